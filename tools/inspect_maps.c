/*
 * inspect_maps.c - magnitude and error maps of one head slice (inspect_maps.h).
 */
#include "inspect_maps.h"

#include "plot/heatmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

bool maps_write_slice(const char *path, const char *title, const char *subtitle, const float *k, const float *kd,
                      const float *v, const float *vd, uint32_t n, uint32_t d)
{
    size_t nd = (size_t)n * d;
    float *m = malloc(4 * nd * sizeof *m);
    heat_figure *f = malloc(sizeof *f);
    if (m == NULL || f == NULL) {
        fprintf(stderr, "kvq: %s: out of memory\n", path);
        free(m);
        free(f);
        return false;
    }
    for (size_t i = 0; i < nd; i++) {
        m[i] = fabsf(k[i]);
        m[nd + i] = fabsf(k[i] - kd[i]);
        m[2 * nd + i] = fabsf(v[i]);
        m[3 * nd + i] = fabsf(v[i] - vd[i]);
    }
    heat_init(f, 2, 3.0);
    snprintf(f->title, sizeof f->title, "%s", title);
    snprintf(f->subtitle, sizeof f->subtitle, "%s", subtitle);
    snprintf(f->x_label, sizeof f->x_label, "channel");
    snprintf(f->y_label, sizeof f->y_label, "token");
    static const char *const titles[4] = {"keys: |x|", "keys: quantization error |x - y|", "values: |x|",
                                          "values: quantization error |x - y|"};
    static const char *const labels[4] = {"|key| (log scale, 3 decades)", "|key error| (log scale, 3 decades)",
                                          "|value| (log scale, 3 decades)", "|value error| (log scale, 3 decades)"};
    f->n_panels = 4;
    for (int p = 0; p < 4; p++) {
        snprintf(f->panel[p].title, sizeof f->panel[p].title, "%s", titles[p]);
        snprintf(f->value_label[p], sizeof f->value_label[p], "%s", labels[p]);
        f->panel[p].rows = n;
        f->panel[p].cols = d;
        f->panel[p].v = m + (size_t)p * nd;
        f->panel[p].group = p;
    }
    bool ok = heat_write(f, path);
    free(m);
    free(f);
    return ok;
}
