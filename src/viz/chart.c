/* Line charts with cairo (see include/doppel/chart.h). */
#include "doppel/chart.h"
#include "util/util.h"

#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

dp_chart_params dp_chart_default_params(void)
{
    dp_chart_params p = {0};
    p.x_min = p.x_max = p.y_min = p.y_max = NAN;
    return p;
}

/* tab10: distinct in colour; shapes cycle every 10 series. */
static const double PALETTE[10][3] = {{0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17},
                                      {0.84, 0.15, 0.16}, {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29},
                                      {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50}, {0.74, 0.74, 0.13},
                                      {0.09, 0.75, 0.81}};

typedef struct axis {
    double lo, hi; /* in data units */
    bool log;
    double a, b; /* pixel range */
} axis;

static double to_px(const axis *ax, double v)
{
    double t = ax->log ? (log10(v) - log10(ax->lo)) / (log10(ax->hi) - log10(ax->lo))
                       : (v - ax->lo) / (ax->hi - ax->lo);
    return ax->a + t * (ax->b - ax->a);
}

static bool usable(const axis *ax, double v)
{
    return isfinite(v) && (!ax->log || v > 0);
}

static void fmt_num(char *buf, size_t cap, double v)
{
    double a = fabs(v);
    if (a >= 1e6 && fmod(a, 1e5) == 0)
        snprintf(buf, cap, "%gM", v / 1e6);
    else if (a >= 1e3 && fmod(a, 100) == 0)
        snprintf(buf, cap, "%gk", v / 1e3);
    else
        snprintf(buf, cap, "%g", v);
}

/* Round the data range out to something that reads well. */
static void fit_axis(axis *ax, double lo, double hi, double want_lo, double want_hi)
{
    if (!isfinite(lo) || !isfinite(hi)) lo = hi = ax->log ? 1 : 0;
    if (ax->log) {
        if (hi <= lo) hi = lo * 10;
        lo /= 1.12; /* keep markers off the frame */
        hi *= 1.12;
        lo = pow(10, floor(log10(lo) * 4) / 4); /* quarter decades */
        hi = pow(10, ceil(log10(hi) * 4) / 4);
    } else {
        if (hi <= lo) hi = lo + 1;
        double pad = (hi - lo) * 0.03;
        lo -= pad;
        hi += pad;
    }
    ax->lo = isnan(want_lo) ? lo : want_lo;
    ax->hi = isnan(want_hi) ? hi : want_hi;
    if (ax->hi <= ax->lo) ax->hi = ax->lo + (ax->log ? ax->lo * 9 : 1);
}

/* Tick values into t (at most cap); labelled[i] says whether to print it. */
static size_t ticks(const axis *ax, double *t, bool *labelled, size_t cap)
{
    size_t n = 0;
    if (ax->log) {
        double span = log10(ax->hi) - log10(ax->lo);
        static const double mant[3] = {1, 2, 5};
        for (int e = (int)floor(log10(ax->lo)); e <= (int)ceil(log10(ax->hi)) && n < cap; e++)
            for (int m = 0; m < 3 && n < cap; m++) {
                double v = mant[m] * pow(10, e);
                if (v < ax->lo * 0.999 || v > ax->hi * 1.001) continue;
                t[n] = v;
                labelled[n++] = m == 0 || span <= 3.5;
            }
        return n;
    }
    double raw = (ax->hi - ax->lo) / 6, mag = pow(10, floor(log10(raw))), step = mag;
    if (raw / mag > 5)
        step = 10 * mag;
    else if (raw / mag > 2)
        step = 5 * mag;
    else if (raw / mag > 1)
        step = 2 * mag;
    for (double v = ceil(ax->lo / step) * step; v <= ax->hi + step * 1e-9 && n < cap; v += step) {
        t[n] = fabs(v) < step * 1e-9 ? 0 : v;
        labelled[n++] = true;
    }
    return n;
}

static void marker(cairo_t *cr, int shape, double x, double y, double r)
{
    switch (shape) {
    case 0:
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, r, 0, 2 * M_PI);
        break;
    case 1:
        cairo_rectangle(cr, x - r * 0.85, y - r * 0.85, r * 1.7, r * 1.7);
        break;
    case 2:
        cairo_move_to(cr, x, y - r * 1.15);
        cairo_line_to(cr, x + r, y + r * 0.75);
        cairo_line_to(cr, x - r, y + r * 0.75);
        cairo_close_path(cr);
        break;
    default:
        cairo_move_to(cr, x, y - r * 1.2);
        cairo_line_to(cr, x + r * 1.2, y);
        cairo_line_to(cr, x, y + r * 1.2);
        cairo_line_to(cr, x - r * 1.2, y);
        cairo_close_path(cr);
        break;
    }
    cairo_fill(cr);
}

int dp_chart_lines(const char *out_png, const dp_chart_series *series, size_t ns,
                   const dp_chart_params *p)
{
    dp_chart_params defaults = dp_chart_default_params();
    if (!p) p = &defaults;
    if (!out_png || (ns && !series))
        return dp_set_error(DP_ERR_INVALID, "dp_chart_lines: no output or no series");
    if (ns > 64) return dp_set_error(DP_ERR_INVALID, "%s: at most 64 series (%zu)", out_png, ns);
    int W = p->width > 0 ? p->width : 1000, H = p->height > 0 ? p->height : 700;
    if (W < 300 || H < 200 || W > 8000 || H > 8000)
        return dp_set_error(DP_ERR_INVALID, "%s: size %dx%d is not in 300x200..8000x8000", out_png,
                            W, H);

    axis ax = {.log = p->log_x}, ay = {.log = p->log_y};
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    size_t points = 0;
    for (size_t s = 0; s < ns; s++)
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!usable(&ax, x) || !usable(&ay, y)) continue;
            xlo = fmin(xlo, x);
            xhi = fmax(xhi, x);
            ylo = fmin(ylo, y);
            yhi = fmax(yhi, y);
            points++;
        }
    if (!points) return dp_set_error(DP_ERR_INVALID, "%s: nothing to plot", out_png);
    fit_axis(&ax, xlo, xhi, p->x_min, p->x_max);
    fit_axis(&ay, ylo, yhi, p->y_min, p->y_max);

    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surf);
        return dp_set_error(DP_ERR_NOMEM, "%s: cannot make a %dx%d image", out_png, W, H);
    }
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

    /* the legend takes a column on the right, sized by its longest name */
    cairo_set_font_size(cr, 13);
    double legend_w = 0;
    for (size_t s = 0; s < ns; s++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, series[s].name ? series[s].name : "", &e);
        legend_w = fmax(legend_w, e.x_advance);
    }
    legend_w = fmin(legend_w + 44, W * 0.4);
    double top = 28 + (p->title ? 26 : 0) + (p->subtitle ? 20 : 0);
    double L = 84, R = W - legend_w - 24, T = top, B = H - 64;
    ax.a = L;
    ax.b = R;
    ay.a = B;
    ay.b = T;

    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    if (p->title) {
        cairo_set_font_size(cr, 19);
        cairo_move_to(cr, L, 32);
        cairo_show_text(cr, p->title);
    }
    if (p->subtitle) {
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        cairo_set_font_size(cr, 13);
        cairo_move_to(cr, L, p->title ? 54 : 32);
        cairo_show_text(cr, p->subtitle);
    }

    /* grid and tick labels */
    double tv[64];
    bool lab[64];
    char buf[32];
    cairo_set_font_size(cr, 12);
    for (int dim = 0; dim < 2; dim++) {
        const axis *a = dim ? &ay : &ax;
        size_t nt = ticks(a, tv, lab, 64);
        for (size_t i = 0; i < nt; i++) {
            double px = to_px(a, tv[i]);
            cairo_set_source_rgb(cr, lab[i] ? 0.86 : 0.93, lab[i] ? 0.86 : 0.93,
                                 lab[i] ? 0.86 : 0.93);
            cairo_set_line_width(cr, 1);
            if (dim) {
                cairo_move_to(cr, L, floor(px) + 0.5);
                cairo_line_to(cr, R, floor(px) + 0.5);
            } else {
                cairo_move_to(cr, floor(px) + 0.5, T);
                cairo_line_to(cr, floor(px) + 0.5, B);
            }
            cairo_stroke(cr);
            if (!lab[i]) continue;
            fmt_num(buf, sizeof buf, tv[i]);
            cairo_text_extents_t e;
            cairo_text_extents(cr, buf, &e);
            cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
            if (dim)
                cairo_move_to(cr, L - 8 - e.x_advance, px + 4);
            else
                cairo_move_to(cr, px - e.x_advance / 2, B + 18);
            cairo_show_text(cr, buf);
        }
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 14);
    if (p->x_label) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, p->x_label, &e);
        cairo_move_to(cr, (L + R) / 2 - e.x_advance / 2, H - 22);
        cairo_show_text(cr, p->x_label);
    }
    if (p->y_label) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, p->y_label, &e);
        cairo_save(cr);
        cairo_move_to(cr, 22, (T + B) / 2 + e.x_advance / 2);
        cairo_rotate(cr, -M_PI / 2);
        cairo_show_text(cr, p->y_label);
        cairo_restore(cr);
    }

    /* the curves, clipped to the plot area */
    cairo_save(cr);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (size_t s = 0; s < ns; s++) {
        const double *c = PALETTE[s % 10];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2);
        bool pen = false;
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!usable(&ax, x) || !usable(&ay, y)) continue;
            if (pen)
                cairo_line_to(cr, to_px(&ax, x), to_px(&ay, y));
            else
                cairo_move_to(cr, to_px(&ax, x), to_px(&ay, y));
            pen = true;
        }
        cairo_stroke(cr);
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (usable(&ax, x) && usable(&ay, y))
                marker(cr, (int)(s / 10 + s) % 4, to_px(&ax, x), to_px(&ay, y), 4);
        }
    }
    cairo_restore(cr);

    /* legend */
    cairo_set_font_size(cr, 13);
    for (size_t s = 0; s < ns; s++) {
        const double *c = PALETTE[s % 10];
        double y = T + 12 + 22 * (double)s;
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, R + 16, y);
        cairo_line_to(cr, R + 40, y);
        cairo_stroke(cr);
        marker(cr, (int)(s / 10 + s) % 4, R + 28, y, 4);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_move_to(cr, R + 46, y + 4.5);
        cairo_show_text(cr, series[s].name ? series[s].name : "");
    }
    cairo_destroy(cr);

    /* beside the target, then rename: a reader never sees half a PNG */
    size_t len = strlen(out_png) + 24;
    char *tmp = malloc(len);
    if (!tmp) {
        cairo_surface_destroy(surf);
        return dp_set_error(DP_ERR_NOMEM, "%s: out of memory", out_png);
    }
    snprintf(tmp, len, "%s.tmp%d", out_png, (int)getpid());
    cairo_status_t st = cairo_surface_write_to_png(surf, tmp);
    cairo_surface_destroy(surf);
    int rc = 0;
    if (st != CAIRO_STATUS_SUCCESS) {
        unlink(tmp);
        rc = dp_set_error(DP_ERR_IO, "%s: cannot write PNG: %s", out_png,
                          cairo_status_to_string(st));
    } else if (rename(tmp, out_png) != 0) {
        unlink(tmp);
        rc = dp_set_error(DP_ERR_IO, "%s: cannot rename the finished PNG into place", out_png);
    }
    free(tmp);
    return rc;
}
