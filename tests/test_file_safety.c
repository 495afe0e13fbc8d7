/*
 * test_file_safety.c - what kvq promises about files beyond their formats
 * (S16.1, S16.2; docs/GUARANTEES.md): concurrent writers of one path, links
 * planted where the temporary file goes, writers ended by a signal, inputs
 * that never end, and I/O errors that say why. Findings 4, 5 and 7 of issue 17.
 */
#define _POSIX_C_SOURCE 200809L /* fork, mkfifo, symlink, setrlimit, sigaction */
#include "check_main.h"
#include "support/scratch.h"
#include "kvq/kvq.h"
#include "kvq/kvq_io.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A kvt of 2 x 2 x 256 x 64 fp16 keys and values (256 KiB) whose every element is `fill`. */
static kvq_kvfile *filled_kvfile(float fill)
{
    kvq_kvfile *f = NULL;
    KVQ_EXPECT_STATUS(kvq_kvfile_create(2, 2, 256, 64, KVQ_DTYPE_FP16, KVQ_KVFILE_KEYS | KVQ_KVFILE_VALUES, &f),
                      KVQ_OK);
    size_t n = (size_t)2 * 2 * 256 * 64;
    for (size_t i = 0; i < n; i++) f->keys[i] = f->values[i] = fill;
    return f;
}

static void wait_for(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0) ck_assert_int_eq(errno, EINTR);
}

/* Finding 4: two processes write the same path over and over while a third reads it. With one
 * shared "<path>.tmp" a writer truncated the other's file and renamed it half-written (readers
 * saw truncated and checksum-failing files) or found it gone (the rename failed). Every write
 * must succeed and every read must return one writer's complete file. */
START_TEST(concurrent_writers_never_expose_partial_files)
{
    const char *p = scratch_path(0, "shared.kvt");
    enum { WRITES = 150 };
    pid_t writer[2];
    for (int w = 0; w < 2; w++) {
        writer[w] = fork();
        ck_assert_int_ge(writer[w], 0);
        if (writer[w] == 0) {
            kvq_kvfile *f = filled_kvfile(w == 0 ? 1.0f : -2.0f);
            int failures = 0;
            for (int i = 0; i < WRITES; i++) failures += kvq_kvfile_write(p, f) != KVQ_OK;
            if (failures) fprintf(stderr, "writer %d: %d writes failed, last: %s\n", w, failures, kvq_last_error());
            kvq_kvfile_free(f);
            _exit(failures == 0 ? 0 : 1);
        }
    }
    int reads = 0, complete = 0, absent = 0;
    char first_problem[512] = "";
    bool running[2] = {true, true};
    while (running[0] || running[1]) {
        kvq_kvfile *g = NULL;
        kvq_status st = kvq_kvfile_read(p, &g);
        reads++;
        if (st == KVQ_OK) {
            /* one writer's file, whole: every element is that writer's fill */
            float fill = g->keys[0];
            bool whole = fill == 1.0f || fill == -2.0f;
            size_t n = (size_t)2 * 2 * 256 * 64;
            for (size_t i = 0; whole && i < n; i++) whole = g->keys[i] == fill && g->values[i] == fill;
            complete += whole;
            if (!whole && first_problem[0] == '\0') snprintf(first_problem, sizeof first_problem, "mixed contents");
            kvq_kvfile_free(g);
        } else if (st == KVQ_ERR_IO && complete == 0) {
            absent++; /* before the first rename the path does not exist yet */
        } else if (first_problem[0] == '\0') {
            snprintf(first_problem, sizeof first_problem, "%s: %s", kvq_status_name(st), kvq_last_error());
        }
        for (int w = 0; w < 2; w++) {
            int status;
            if (running[w] && waitpid(writer[w], &status, WNOHANG) == writer[w]) {
                running[w] = false;
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d: some writes failed", w);
            }
        }
    }
    ck_assert_msg(first_problem[0] == '\0', "after %d reads (%d complete): %s", reads, complete, first_problem);
    ck_assert_int_gt(complete, 0);
    ck_assert_int_eq(scratch_count(".tmp"), 0); /* every temporary file was renamed */
}
END_TEST

/* Finding 5: a link planted at "<path>.tmp" (the old fixed temporary name) made a writer
 * overwrite the link's target. The writer now creates a new file exclusively: the target and the
 * link stay as they were. */
START_TEST(planted_link_is_not_followed)
{
    const char *victim = scratch_path(0, "victim"), *out = scratch_path(1, "out.kvt"), *link = scratch_path(2, "out.kvt.tmp");
    FILE *v = fopen(victim, "wb");
    ck_assert_ptr_nonnull(v);
    fputs("precious", v);
    fclose(v);
    ck_assert_int_eq(symlink(victim, link), 0);
    kvq_kvfile *f = filled_kvfile(0.5f);
    KVQ_EXPECT_STATUS(kvq_kvfile_write(out, f), KVQ_OK);
    kvq_kvfile_free(f);
    char text[32] = "";
    v = fopen(victim, "rb");
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(fgets(text, sizeof text, v));
    fclose(v);
    ck_assert_str_eq(text, "precious");
    struct stat st;
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    kvq_kvfile *g = NULL;
    KVQ_EXPECT_STATUS(kvq_kvfile_read(out, &g), KVQ_OK);
    ck_assert(g->keys[0] == 0.5f);
    kvq_kvfile_free(g);
}
END_TEST

/* Writes a 256 KiB kvt under a 64 KiB file size limit: the write raises SIGXFSZ, which ends the
 * process (the default action) or runs `handler`. Returns the child's wait status. */
static int write_past_size_limit(const char *p, void (*handler)(int))
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit none = {0, 0}, limit = {64 * 1024, 64 * 1024};
        setrlimit(RLIMIT_CORE, &none);
        setrlimit(RLIMIT_FSIZE, &limit);
        if (handler != NULL) {
            struct sigaction action;
            memset(&action, 0, sizeof action);
            action.sa_handler = handler;
            action.sa_flags = (int)SA_RESETHAND;
            sigaction(SIGXFSZ, &action, NULL);
        }
        kvq_kvfile *f = filled_kvfile(3.0f);
        kvq_kvfile_write(p, f);
        _exit(0); /* not reached: the signal ends the process */
    }
    int status;
    wait_for(pid, &status);
    return status;
}

static void remove_and_die(int sig)
{
    kvq_remove_temporary_files();
    raise(sig); /* SA_RESETHAND put the default action back */
}

/* Finding 5: a writer ended by a signal left its temporary file behind. A handler that calls
 * kvq_remove_temporary_files (as the kvq tool's does) removes it; without one (or after SIGKILL)
 * the file stays, under a name that says what it is. */
START_TEST(signal_handler_removes_temporary_files)
{
    const char *p = scratch_path(0, "big.kvt");
    int status = write_past_size_limit(p, remove_and_die);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ, "wait status %d", status);
    ck_assert_int_eq(scratch_count("big.kvt"), 0);
    status = write_past_size_limit(p, NULL);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ);
    ck_assert_int_eq(scratch_count("big.kvt.tmp-"), 1);
    ck_assert_int_eq(scratch_count("big.kvt"), 1); /* the temporary file only, never big.kvt itself */
}
END_TEST

/* Finding 7: a reader loaded its whole input before looking at it (/dev/zero grew until memory ran
 * out). It reads the header first and then no more than the header allows. */
START_TEST(endless_input_is_refused_at_the_magic)
{
    kvq_kvfile *kv = NULL;
    kvq_calibration *cal = NULL;
    kvq_qfile *q = NULL;
    KVQ_EXPECT_STATUS(kvq_kvfile_read("/dev/zero", &kv), KVQ_ERR_FILE_CORRUPT);
    ck_assert(strstr(kvq_last_error(), "magic") != NULL);
    KVQ_EXPECT_STATUS(kvq_calibration_read("/dev/zero", &cal), KVQ_ERR_FILE_CORRUPT);
    KVQ_EXPECT_STATUS(kvq_qfile_read("/dev/zero", &q), KVQ_ERR_FILE_CORRUPT);
    ck_assert_ptr_null(kv);
    ck_assert_ptr_null(cal);
    ck_assert_ptr_null(q);
}
END_TEST

/* A child writes `header` into a FIFO, then zeros until the reader stops reading (or 64 MiB);
 * returns how many bytes it got into the pipe. The parent reads the FIFO with `reader`. */
typedef kvq_status (*read_fn)(const char *path);
static kvq_status read_kvt(const char *p)
{
    kvq_kvfile *f = NULL;
    kvq_status st = kvq_kvfile_read(p, &f);
    kvq_kvfile_free(f);
    return st;
}
static kvq_status read_kvqz(const char *p)
{
    kvq_qfile *f = NULL;
    kvq_status st = kvq_qfile_read(p, &f);
    kvq_qfile_free(f);
    return st;
}

static long long bytes_taken_from_endless_fifo(const uint8_t *header, size_t header_size, read_fn reader,
                                               kvq_status *status)
{
    const char *fifo = scratch_path(3, "endless");
    unlink(fifo);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    int counter[2];
    ck_assert_int_eq(pipe(counter), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        close(counter[0]);
        int fd = open(fifo, O_WRONLY);
        long long sent = 0;
        if (fd >= 0 && write(fd, header, header_size) == (ssize_t)header_size) sent = (long long)header_size;
        static uint8_t zeros[65536];
        while (fd >= 0 && sent < (64LL << 20)) {
            ssize_t n = write(fd, zeros, sizeof zeros);
            if (n <= 0) break; /* EPIPE: the reader closed its end */
            sent += n;
        }
        ssize_t ignored = write(counter[1], &sent, sizeof sent);
        (void)ignored;
        _exit(0);
    }
    close(counter[1]);
    *status = reader(fifo);
    long long sent = -1;
    ck_assert_int_eq(read(counter[0], &sent, sizeof sent), (ssize_t)sizeof sent);
    close(counter[0]);
    int wstatus;
    wait_for(pid, &wstatus);
    unlink(fifo);
    return sent;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

START_TEST(endless_input_ends_at_the_size_the_header_implies)
{
    /* a valid .kvt header for 1 x 1 x 2 x 2 fp16 keys: 36 + 8 + 32 bytes in all */
    uint8_t kvt[36] = {'K', 'V', 'Q', 'T'};
    put32(kvt + 4, 1);
    kvt[14] = 1; /* dtype fp16 */
    put32(kvt + 16, 1);
    put32(kvt + 20, 1);
    put32(kvt + 24, 2);
    put32(kvt + 28, 2);
    put32(kvt + 32, KVQ_KVFILE_KEYS);
    kvq_status st;
    long long taken = bytes_taken_from_endless_fifo(kvt, sizeof kvt, read_kvt, &st);
    ck_assert_int_eq(st, KVQ_ERR_FILE_CORRUPT);
    ck_assert_msg(strstr(kvq_last_error(), "at least 77 bytes, but the header implies 76") != NULL, "%s",
                  kvq_last_error());
    /* what the reader took, plus at most what the pipe and the C library buffer hold */
    ck_assert_msg(taken < (4LL << 20), "the reader consumed %lld bytes of an endless input", taken);
    /* a .kvqz header: its records have variable sizes, bounded by the header's sizes */
    uint8_t kvqz[32] = {'K', 'V', 'Q', 'Z'};
    put32(kvqz + 4, 1);
    put32(kvqz + 16, 1);
    put32(kvqz + 20, 1);
    put32(kvqz + 24, 32);
    put32(kvqz + 28, 4);
    taken = bytes_taken_from_endless_fifo(kvqz, sizeof kvqz, read_kvqz, &st);
    ck_assert_int_eq(st, KVQ_ERR_FILE_CORRUPT); /* record 0's role field is 0 (keys), key_mode 0, ... then a rule */
    ck_assert_msg(taken < (4LL << 20), "the reader consumed %lld bytes of an endless input", taken);
}
END_TEST

/* Finding 8: I/O errors carry the system's reason. */
START_TEST(io_errors_say_why)
{
    kvq_kvfile *f = NULL;
    KVQ_EXPECT_STATUS(kvq_kvfile_read(scratch_path(0, "missing.kvt"), &f), KVQ_ERR_IO);
    ck_assert_msg(strstr(kvq_last_error(), strerror(ENOENT)) != NULL, "%s", kvq_last_error());
    kvq_kvfile *g = filled_kvfile(1.0f);
    KVQ_EXPECT_STATUS(kvq_kvfile_write(scratch_path(1, "no-such-dir/x.kvt"), g), KVQ_ERR_IO);
    ck_assert_msg(strstr(kvq_last_error(), strerror(ENOENT)) != NULL, "%s", kvq_last_error());
    /* renaming onto a directory fails, and the temporary file is removed */
    ck_assert_int_eq(mkdir(scratch_path(2, "a-directory"), 0700), 0);
    KVQ_EXPECT_STATUS(kvq_kvfile_write(scratch_path(2, "a-directory"), g), KVQ_ERR_IO);
    ck_assert_msg(strstr(kvq_last_error(), strerror(EISDIR)) != NULL, "%s", kvq_last_error());
    ck_assert_int_eq(scratch_count(".tmp-"), 0);
    rmdir(scratch_path(2, "a-directory"));
    uint8_t digest[32];
    KVQ_EXPECT_STATUS(kvq_sha256_file(scratch_path(0, "missing.kvt"), digest), KVQ_ERR_IO);
    ck_assert_msg(strstr(kvq_last_error(), strerror(ENOENT)) != NULL, "%s", kvq_last_error());
    kvq_kvfile_free(g);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("file_safety");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, concurrent_writers_never_expose_partial_files);
    tcase_add_test(tc, planted_link_is_not_followed);
    tcase_add_test(tc, signal_handler_removes_temporary_files);
    tcase_add_test(tc, endless_input_is_refused_at_the_magic);
    tcase_add_test(tc, endless_input_ends_at_the_size_the_header_implies);
    tcase_add_test(tc, io_errors_say_why);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
