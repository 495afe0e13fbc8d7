/*
 * test_plot.c - the axes and figures of the tool's plots (tools/plot/): ranges
 * bounded to the data, nice tick values and labels, figures whose legend has
 * one distinct (colour, marker) per series, and no partial file on failure.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "check_main.h"
#include "plot/axis.h"
#include "plot/figure.h"
#include "plot/svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The axis of these values, finished. */
static plot_axis axis_of(plot_scale scale, const double *v, size_t n)
{
    plot_axis a;
    plot_axis_init(&a, scale);
    for (size_t i = 0; i < n; i++) plot_axis_add(&a, v[i]);
    plot_axis_finish(&a);
    return a;
}

/* The labels joined by spaces. */
static void labels(const plot_axis *a, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < a->n_ticks; i++) {
        strncat(out, a->label[i], size - strlen(out) - 1);
        if (i + 1 < a->n_ticks) strncat(out, " ", size - strlen(out) - 1);
    }
}

/* Every tick lies within the drawn range, and the range is the data's with a margin
 * smaller than `margin` of the drawn span on each side. */
static void check_bounded(const plot_axis *a, double margin)
{
    for (size_t i = 0; i < a->n_ticks; i++) {
        double p = plot_axis_pos(a, a->tick[i]);
        ck_assert_msg(p >= -1e-9 && p <= 1 + 1e-9, "tick %s outside the axis (%g)", a->label[i], p);
    }
    ck_assert_msg(plot_axis_pos(a, a->data_lo) <= margin, "empty room below the data: %g",
                  plot_axis_pos(a, a->data_lo));
    ck_assert_msg(plot_axis_pos(a, a->data_hi) >= 1.0 - margin, "empty room above the data: %g",
                  plot_axis_pos(a, a->data_hi));
}

START_TEST(linear_ticks_are_round_and_share_a_unit)
{
    /* the prompts of the offload study: labels were 156.8 / 2564.48 / 7379.84 before */
    const double prompts[] = {704, 3008, 5888, 11648};
    plot_axis a = axis_of(PLOT_LINEAR, prompts, 4);
    char text[256];
    labels(&a, text, sizeof text);
    ck_assert_str_eq(text, "2.5k 5k 7.5k 10k");
    check_bounded(&a, 0.06);
    const double ms[] = {3.54, 46.2};
    a = axis_of(PLOT_LINEAR, ms, 2);
    labels(&a, text, sizeof text);
    ck_assert_str_eq(text, "10 20 30 40");
    /* data from 0 keeps 0 as its lower end */
    const double from_zero[] = {0, 0.25, 1};
    a = axis_of(PLOT_LINEAR, from_zero, 3);
    ck_assert(a.lo == 0.0);
    labels(&a, text, sizeof text);
    ck_assert_str_eq(text, "0 0.25 0.5 0.75 1"); /* span 1.04 / 5 = 0.208: the next nice step is 0.25 */
}
END_TEST

START_TEST(log2_ticks_are_token_counts_within_the_data)
{
    /* the contexts of study (a): the x axis went to 1e6 with no data past 1.3e5 before */
    const double contexts[] = {1024, 4096, 16384, 32768, 65536, 131072};
    plot_axis a = axis_of(PLOT_LOG2, contexts, 6);
    char text[256];
    labels(&a, text, sizeof text);
    ck_assert_str_eq(text, "1K 2K 4K 8K 16K 32K 64K 128K");
    check_bounded(&a, 0.04);
    const double wide[] = {1024, 1048576};
    a = axis_of(PLOT_LOG2, wide, 2);
    labels(&a, text, sizeof text);
    ck_assert_str_eq(text, "1K 4K 16K 64K 256K 1M");
}
END_TEST

START_TEST(log10_ticks_fit_the_range)
{
    const double speedups[] = {0.37, 1.45};
    plot_axis a = axis_of(PLOT_LOG10, speedups, 2);
    char text[256];
    labels(&a, text, sizeof text);
    ck_assert_str_eq(text, "0.5 0.7 1 1.5"); /* 1.5 lies within the 3% margin above 1.45 */
    check_bounded(&a, 0.04);
    const double times[] = {0.021, 1.8};
    a = axis_of(PLOT_LOG10, times, 2);
    labels(&a, text, sizeof text);
    ck_assert_str_eq(text, "0.03 0.1 0.3 1");
    const double rates[] = {1.1e6, 7.4e6};
    a = axis_of(PLOT_LOG10, rates, 2);
    labels(&a, text, sizeof text);
    ck_assert_str_eq(text, "1.5M 2M 3M 5M 7M");
    const double decades[] = {1e-6, 1.0};
    a = axis_of(PLOT_LOG10, decades, 2);
    labels(&a, text, sizeof text);
    ck_assert_str_eq(text, "1e-6 1e-5 0.0001 0.001 0.01 0.1 1");
    /* values a log axis cannot show are refused, not drawn */
    plot_axis_init(&a, PLOT_LOG10);
    ck_assert(!plot_axis_add(&a, 0.0));
    ck_assert(!plot_axis_add(&a, -1.0));
    ck_assert(!plot_axis_add(&a, NAN));
    ck_assert(plot_axis_add(&a, 2.0));
}
END_TEST

START_TEST(si_labels)
{
    char s[24];
    plot_format_si(0.25, s, sizeof s);
    ck_assert_str_eq(s, "0.25");
    plot_format_si(2000, s, sizeof s);
    ck_assert_str_eq(s, "2000");
    plot_format_si(12000, s, sizeof s);
    ck_assert_str_eq(s, "12k");
    plot_format_si(2446296.1, s, sizeof s);
    ck_assert_str_eq(s, "2.446M");
    plot_format_si(-0.0, s, sizeof s);
    ck_assert_str_eq(s, "0");
    plot_format_si(1e-8, s, sizeof s);
    ck_assert_str_eq(s, "1e-8");
    plot_format_si(-2.5e-7, s, sizeof s);
    ck_assert_str_eq(s, "-2.5e-7");
    plot_format_si(9.99999e-6, s, sizeof s);
    ck_assert_str_eq(s, "1e-5");
}
END_TEST

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    ck_assert(text != NULL);
    ck_assert(fread(text, 1, (size_t)n, f) == (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

static size_t count(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(text, what); p != NULL; p = strstr(p + 1, what)) n++;
    return n;
}

START_TEST(figure_styles_are_distinct_and_the_legend_matches)
{
    figure *f = malloc(sizeof *f);
    ck_assert(f != NULL);
    fig_init(f, 1, 2, PLOT_LOG2, PLOT_LOG10);
    snprintf(f->title, sizeof f->title, "t <&> \"quoted\"");
    /* 16 series: more than the palette's colours, and markers */
    char name[32];
    for (int s = 0; s < 16; s++) {
        snprintf(name, sizeof name, "series %d", s);
        size_t st = fig_style_of(f, name, false);
        for (int k = 0; k < 4; k++) fig_add(f, (size_t)(s % 2), st, 1024.0 * (1 << (2 * k)), 1.0 + s + k);
    }
    size_t base = fig_style_of(f, "baseline", true);
    ck_assert_uint_eq(fig_style_of(f, "series 3", false), 3);
    fig_add(f, 0, base, 1024, 0.5);
    fig_add(f, 0, base, 4096, 0.0); /* not drawable on a log axis: left out */
    for (size_t i = 0; i < f->n_styles; i++)
        for (size_t j = i + 1; j < f->n_styles; j++)
            ck_assert_msg(strcmp(f->style[i].colour, f->style[j].colour) != 0 || f->style[i].marker != f->style[j].marker,
                          "styles %zu and %zu look the same", i, j);
    ck_assert(f->style[base].dashed && !f->style[0].dashed);
    char dir[] = "/tmp/kvq_test_plot_XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/f.svg", dir);
    ck_assert(fig_write(f, path));
    char *svg_text = read_all(path);
    /* 17 series drawn as lines in their panels, and one legend line each (16 solid + 1 dashed baseline) */
    ck_assert_uint_eq(count(svg_text, "<polyline"), 16);
    ck_assert_msg(strstr(svg_text, "t &lt;&amp;&gt; &quot;quoted&quot;") != NULL, "the title is not escaped");
    ck_assert_uint_eq(count(svg_text, ">series "), 16);
    ck_assert_uint_eq(count(svg_text, ">baseline<"), 1);
    ck_assert(strncmp(svg_text, "<?xml", 5) == 0);
    ck_assert(strstr(svg_text, "</svg>\n") != NULL);
    free(svg_text);
    /* the same figure again: the same bytes */
    char again[256];
    snprintf(again, sizeof again, "%s/g.svg", dir);
    ck_assert(fig_write(f, again));
    char *a = read_all(path), *b = read_all(again);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    /* a figure that cannot be written leaves no file (and no .tmp) */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/missing/dir/f.svg", dir);
    ck_assert(!fig_write(f, bad));
    fig_free(f);
    free(f);
    remove(path);
    remove(again);
    ck_assert_int_eq(rmdir(dir), 0); /* empty: nothing was left behind */
}
END_TEST

START_TEST(sequential_colours)
{
    char c[8];
    svg_sequential(0.0, c);
    ck_assert_str_eq(c, "#440154");
    svg_sequential(1.0, c);
    ck_assert_str_eq(c, "#fde725");
    svg_sequential(-3.0, c);
    ck_assert_str_eq(c, "#440154");
    svg_sequential(0.5, c);
    ck_assert_str_eq(c, "#21918c");
}
END_TEST

static Suite *plot_suite(void)
{
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, linear_ticks_are_round_and_share_a_unit);
    tcase_add_test(tc, log2_ticks_are_token_counts_within_the_data);
    tcase_add_test(tc, log10_ticks_fit_the_range);
    tcase_add_test(tc, si_labels);
    tcase_add_test(tc, figure_styles_are_distinct_and_the_legend_matches);
    tcase_add_test(tc, sequential_colours);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(plot_suite)
