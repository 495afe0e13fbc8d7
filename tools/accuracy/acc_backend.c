/*
 * acc_backend.c - a backend scored through the ABI (accuracy.h), every call
 * into it in a child process: the probe that reads its name and caps, then one
 * child per bit width. A crash or a hang costs that width's row (status
 * crashed or timeout, with the signal) and the run goes on, as in kvq conform
 * (tools/conform/isolate.h). The runner never loads the backend itself.
 */
#define _POSIX_C_SOURCE 200809L
#include "accuracy.h"

#include "backend_open.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef void (*child_fn)(const void *arg, void *result);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs fn in a child that sends `size` bytes of result back through a pipe. ACC_OK with result
 * filled, or why the child did not report (into why). */
static acc_status in_child(child_fn fn, const void *arg, void *result, size_t size, double timeout, char *why,
                           size_t why_size)
{
    int fd[2];
    if (pipe(fd) != 0) {
        snprintf(why, why_size, "cannot create a pipe: %s", strerror(errno));
        return ACC_FAILED;
    }
    fflush(NULL); /* the child must not print the parent's buffered output again */
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_size, "cannot fork: %s", strerror(errno));
        close(fd[0]);
        close(fd[1]);
        return ACC_FAILED;
    }
    if (pid == 0) {
        close(fd[0]);
        memset(result, 0, size);
        fn(arg, result);
        const char *p = result;
        for (size_t done = 0; done < size;) {
            ssize_t w = write(fd[1], p + done, size - done);
            if (w <= 0 && errno != EINTR) _exit(3);
            if (w > 0) done += (size_t)w;
        }
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    bool timed_out = false;
    double deadline = now_s() + timeout;
    while (got < size) {
        int wait_ms = -1;
        if (timeout > 0.0) {
            double left = deadline - now_s();
            if (left <= 0.0) {
                timed_out = true;
                break;
            }
            wait_ms = (int)(left * 1000.0) + 1;
        }
        struct pollfd p = {fd[0], POLLIN, 0};
        int n = poll(&p, 1, wait_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        ssize_t r = read(fd[0], (char *)result + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; /* the child ended before it reported */
        got += (size_t)r;
    }
    close(fd[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        snprintf(why, why_size, "did not finish within %g s (killed)", timeout);
        return ACC_TIMEOUT;
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(why, why_size, "was killed by signal %d (%s)", sig, strsignal(sig));
        return ACC_CRASHED;
    }
    if (got < size || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, why_size, "ended (exit status %d) before it reported its result",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return ACC_CRASHED;
    }
    return ACC_OK;
}

typedef struct probe_result {
    bool ok;
    acc_backend_info info;
} probe_result;

static void probe(const void *arg, void *result)
{
    probe_result *r = result;
    const kvq_backend_api *api;
    kvq_backend_context *ctx;
    kvq_backend_caps caps;
    if (!tool_open_backend(arg, -1, -1, &api, &ctx, &caps, r->info.message, sizeof r->info.message)) return;
    acc_backend_info *i = &r->info;
    const char *device = api->device_name(ctx);
    snprintf(i->name, sizeof i->name, "%s", api->name != NULL ? api->name : "?");
    snprintf(i->description, sizeof i->description, "%s", api->description != NULL ? api->description : "");
    snprintf(i->device, sizeof i->device, "%s", device != NULL ? device : "");
    bool tensors = (caps.ops & KVQ_BACKEND_OP_QUANTIZE) && (caps.ops & KVQ_BACKEND_OP_DEQUANTIZE) &&
                   api->quantize_head != NULL && api->dequantize != NULL && api->tensor_free != NULL;
    i->uniform_bits = tensors ? caps.uniform_bits & ((1u << 2) | (1u << 3) | (1u << 4) | (1u << 8)) : 0u;
    i->has_attention = (caps.ops & KVQ_BACKEND_OP_ATTENTION) && api->attention_decode != NULL &&
                       (caps.rope_pairings & (1u << KVQ_ROPE_NONE));
    if (i->uniform_bits == 0)
        snprintf(i->message, sizeof i->message,
                 "backend %s advertises no quantize_head and dequantize at 2, 3, 4 or 8 bits (caps.ops, "
                 "caps.uniform_bits): nothing to score%s",
                 i->name, caps.peer_formats != 0 ? "; its peer formats are judged exactly by kvq conform --format" : "");
    r->ok = i->uniform_bits != 0;
    api->close(ctx);
}

bool acc_backend_probe(const char *backend, double timeout, acc_backend_info *info)
{
    probe_result r;
    char why[512];
    acc_status st = in_child(probe, backend, &r, sizeof r, timeout, why, sizeof why);
    if (st != ACC_OK) {
        fprintf(stderr, "kvq accuracy: error: backend %s %s while it was loaded and opened\n", backend, why);
        return false;
    }
    *info = r.info;
    if (!r.ok) fprintf(stderr, "kvq accuracy: error: %s\n", r.info.message);
    return r.ok;
}

typedef struct row_job {
    const acc_data *data;
    const char *backend;
    uint32_t bits;
    bool attention;
} row_job;

typedef struct row_result {
    acc_status status;
    char message[512];
    acc_score points[ACC_MAX_POINTS];
} row_result;

/* The backend opened in the child, for backend_head. */
typedef struct open_backend_state {
    const row_job *job;
    const kvq_backend_api *api;
    kvq_backend_context *ctx;
} open_backend_state;

/* One head: quantize keys and values, read back their values, attend. */
static bool backend_head(void *arg, const acc_inputs *in, uint32_t h, float *k, float *v, float *out, bool *has_out,
                         char *why, size_t why_size)
{
    const open_backend_state *b = arg;
    const kvq_backend_api *api = b->api;
    kvq_backend_context *ctx = b->ctx;
    const acc_point *p = in->point;
    size_t slice = (size_t)p->n_tokens * p->head_dim;
    kvq_head_config kc = acc_head_config(KVQ_ROLE_KEYS, b->job->bits),
                    vc = acc_head_config(KVQ_ROLE_VALUES, b->job->bits);
    kvq_backend_tensor *kt = NULL, *vt = NULL;
    uint32_t *pos = malloc(p->n_tokens * sizeof *pos);
    kvq_status st = pos == NULL ? KVQ_ERR_OUT_OF_MEMORY : KVQ_OK;
    for (uint32_t t = 0; pos != NULL && t < p->n_tokens; t++) pos[t] = t;
    const char *what = "quantize_head (keys)";
    if (st == KVQ_OK) st = api->quantize_head(ctx, &kc, in->keys + h * slice, p->n_tokens, p->head_dim, NULL, &kt);
    if (st == KVQ_OK) what = "quantize_head (values)";
    if (st == KVQ_OK) st = api->quantize_head(ctx, &vc, in->values + h * slice, p->n_tokens, p->head_dim, NULL, &vt);
    if (st == KVQ_OK) what = "dequantize (keys)";
    if (st == KVQ_OK) st = api->dequantize(ctx, kt, k);
    if (st == KVQ_OK) what = "dequantize (values)";
    if (st == KVQ_OK) st = api->dequantize(ctx, vt, v);
    kvq_rope none = {KVQ_ROPE_NONE, 10000.0f};
    *has_out = b->job->attention;
    if (st == KVQ_OK && b->job->attention) {
        what = "attention_decode";
        st = api->attention_decode(ctx, kt, vt, pos, &none, in->q + (size_t)h * p->n_q * p->head_dim, p->n_q,
                                   p->n_tokens, out);
    }
    if (st != KVQ_OK) {
        const char *m = api->last_error(ctx);
        snprintf(why, why_size, "%s failed: %s: %.250s", what, kvq_status_name(st),
                 m != NULL && m[0] != '\0' ? m : "(no message from last_error)");
    }
    if (kt != NULL) api->tensor_free(ctx, kt);
    if (vt != NULL) api->tensor_free(ctx, vt);
    free(pos);
    return st == KVQ_OK;
}

static void score_row(const void *arg, void *result)
{
    row_result *r = result;
    open_backend_state b = {arg, NULL, NULL};
    kvq_backend_caps caps;
    if (!tool_open_backend(b.job->backend, -1, -1, &b.api, &b.ctx, &caps, r->message, sizeof r->message)) {
        r->status = ACC_FAILED;
        return;
    }
    if (!acc_score_source(b.job->data, backend_head, &b, r->points, r->message, sizeof r->message))
        r->status = ACC_FAILED;
    b.api->close(b.ctx);
}

void acc_backend_row(acc_report *r, const char *backend, const acc_backend_info *info, uint32_t bits,
                     double timeout)
{
    acc_row *row = acc_report_add(r);
    if (row == NULL) return;
    row->bits = bits;
    snprintf(row->format, sizeof row->format, "backend %s", info->name);
    snprintf(row->detail, sizeof row->detail, "%.159s", info->description);
    snprintf(row->attention_by, sizeof row->attention_by, "%s",
             info->has_attention ? "backend" : "reference arithmetic over the backend's values");
    if (!(info->uniform_bits & (1u << bits))) {
        row->status = ACC_MISSING;
        snprintf(row->message, sizeof row->message, "caps.uniform_bits does not claim %u-bit codes", bits);
        return;
    }
    row_job job = {r->data, backend, bits, info->has_attention};
    row_result *res = malloc(sizeof *res);
    if (res == NULL) {
        row->status = ACC_FAILED;
        snprintf(row->message, sizeof row->message, "out of memory");
        return;
    }
    char why[512];
    row->status = in_child(score_row, &job, res, sizeof *res, timeout, why, sizeof why);
    if (row->status != ACC_OK) {
        snprintf(row->message, sizeof row->message, "the backend %.480s", why);
    } else {
        row->status = res->status;
        snprintf(row->message, sizeof row->message, "%s", res->message);
        memcpy(row->points, res->points, sizeof row->points);
    }
    free(res);
    acc_score_worst(row->points, r->data->n_points, &row->worst);
}
