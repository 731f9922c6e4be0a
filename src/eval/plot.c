/* Line and scatter plots as PNG through cairo (see include/doppel/eval.h):
 * enough of a plotting library for the evaluation's figures, panels side by
 * side, "nice" tick steps (1, 2, 5 x 10^k), optional log x. */
#include "doppel/eval.h"
#include "util/util.h"

#include <cairo.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_PANELS 8
#define MAX_POINTS 1000000

static const double palette[][3] = {
    {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
    {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
};

dp_plot_panel dp_plot_default_panel(void)
{
    dp_plot_panel p = {0};
    p.ymin = p.ymax = NAN;
    p.xmin = p.xmax = NAN;
    return p;
}

static double nice_step(double range, int target)
{
    double raw = range / (target > 0 ? target : 5);
    if (!(raw > 0)) return 1;
    double mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

typedef struct axis {
    double lo, hi; /* in plotted units (log10 for a log axis) */
    bool log;
} axis;

static double ax_val(const axis *a, double v)
{
    return a->log ? log10(v) : v;
}

static void fmt_num(char *buf, size_t n, double v, double step)
{
    if (fabs(v) < step * 1e-9) v = 0;
    if (step >= 1 && fabs(v) < 1e15)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.*f", (int)ceil(-log10(step)), v);
}

static int check_panel(const dp_plot_panel *p)
{
    if (p->n_series > 16) return dp_set_error(DP_ERR_INVALID, "plot: at most 16 series a panel");
    for (size_t s = 0; s < p->n_series; s++) {
        const dp_plot_series *se = &p->series[s];
        if (se->n > MAX_POINTS || (se->n && (!se->x || !se->y)))
            return dp_set_error(DP_ERR_INVALID, "plot: series %zu has no data or too much", s);
        for (size_t i = 0; i < se->n; i++)
            if (!isfinite(se->x[i]) || !isfinite(se->y[i]) || (p->log_x && !(se->x[i] > 0)))
                return dp_set_error(DP_ERR_INVALID,
                                    "plot: series %zu point %zu is not finite (or not > 0 on a "
                                    "log axis)",
                                    s, i);
    }
    return 0;
}

static void data_range(const dp_plot_panel *p, axis *x, axis *y)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t s = 0; s < p->n_series; s++)
        for (size_t i = 0; i < p->series[s].n; i++) {
            double xv = p->series[s].x[i], yv = p->series[s].y[i];
            x0 = fmin(x0, xv);
            x1 = fmax(x1, xv);
            y0 = fmin(y0, yv);
            y1 = fmax(y1, yv);
        }
    if (!isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (!isnan(p->xmin)) x0 = p->xmin;
    if (!isnan(p->xmax)) x1 = p->xmax;
    if (!isnan(p->ymin)) y0 = p->ymin;
    if (!isnan(p->ymax)) y1 = p->ymax;
    x->log = p->log_x;
    x->lo = ax_val(x, x0);
    x->hi = ax_val(x, x1);
    y->lo = y0;
    y->hi = y1;
    /* A little air around the data unless the caller fixed the bound. */
    double dx = x->hi - x->lo, dy = y->hi - y->lo;
    if (!(dx > 0)) dx = fabs(x->lo) > 0 ? fabs(x->lo) * 0.1 : 1;
    if (!(dy > 0)) dy = fabs(y->lo) > 0 ? fabs(y->lo) * 0.1 : 1;
    if (isnan(p->xmin)) x->lo -= dx * 0.04;
    if (isnan(p->xmax)) x->hi += dx * 0.04;
    if (isnan(p->ymin)) y->lo -= dy * 0.06;
    if (isnan(p->ymax)) y->hi += dy * 0.06;
}

static void draw_panel(cairo_t *cr, const dp_plot_panel *p, double ox, double oy, double w,
                       double h)
{
    axis xa, ya;
    data_range(p, &xa, &ya);
    double L = ox + 70, R = ox + w - 20, T = oy + 40, B = oy + h - 55;
#define PX(v) (L + (ax_val(&xa, (v)) - xa.lo) / (xa.hi - xa.lo) * (R - L))
#define PY(v) (B - ((v)-ya.lo) / (ya.hi - ya.lo) * (B - T))
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_text_extents_t ext;
    /* Grid and ticks. */
    cairo_set_font_size(cr, 11);
    cairo_set_line_width(cr, 1);
    double ys = nice_step(ya.hi - ya.lo, 6);
    char buf[64];
    for (double v = ceil(ya.lo / ys) * ys; v <= ya.hi + ys * 1e-9; v += ys) {
        double py = PY(v);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, L, py);
        cairo_line_to(cr, R, py);
        cairo_stroke(cr);
        fmt_num(buf, sizeof buf, v, ys);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_text_extents(cr, buf, &ext);
        cairo_move_to(cr, L - 6 - ext.x_advance, py + 4);
        cairo_show_text(cr, buf);
    }
    if (xa.log) {
        for (int e = (int)floor(xa.lo); e <= (int)ceil(xa.hi); e++)
            for (int m = 1; m < 10; m++) {
                double lv = e + log10(m);
                if (lv < xa.lo || lv > xa.hi) continue;
                double px = L + (lv - xa.lo) / (xa.hi - xa.lo) * (R - L);
                cairo_set_source_rgb(cr, m == 1 ? 0.85 : 0.95, m == 1 ? 0.85 : 0.95,
                                     m == 1 ? 0.85 : 0.95);
                cairo_move_to(cr, px, T);
                cairo_line_to(cr, px, B);
                cairo_stroke(cr);
                if (m == 1 || m == 2 || m == 5) {
                    fmt_num(buf, sizeof buf, m * pow(10, e), e >= 0 ? 1 : pow(10, e));
                    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
                    cairo_text_extents(cr, buf, &ext);
                    cairo_move_to(cr, px - ext.x_advance / 2, B + 16);
                    cairo_show_text(cr, buf);
                }
            }
    } else {
        double xs = nice_step(xa.hi - xa.lo, 8);
        for (double v = ceil(xa.lo / xs) * xs; v <= xa.hi + xs * 1e-9; v += xs) {
            double px = L + (v - xa.lo) / (xa.hi - xa.lo) * (R - L);
            cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
            cairo_move_to(cr, px, T);
            cairo_line_to(cr, px, B);
            cairo_stroke(cr);
            fmt_num(buf, sizeof buf, v, xs);
            cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
            cairo_text_extents(cr, buf, &ext);
            cairo_move_to(cr, px - ext.x_advance / 2, B + 16);
            cairo_show_text(cr, buf);
        }
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_stroke(cr);
    /* Titles. */
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (p->title) {
        cairo_set_font_size(cr, 14);
        cairo_text_extents(cr, p->title, &ext);
        cairo_move_to(cr, (L + R) / 2 - ext.x_advance / 2, oy + 24);
        cairo_show_text(cr, p->title);
    }
    cairo_set_font_size(cr, 12);
    if (p->xlabel) {
        cairo_text_extents(cr, p->xlabel, &ext);
        cairo_move_to(cr, (L + R) / 2 - ext.x_advance / 2, B + 38);
        cairo_show_text(cr, p->xlabel);
    }
    if (p->ylabel) {
        cairo_save(cr);
        cairo_text_extents(cr, p->ylabel, &ext);
        cairo_move_to(cr, ox + 18, (T + B) / 2 + ext.x_advance / 2);
        cairo_rotate(cr, -M_PI / 2);
        cairo_show_text(cr, p->ylabel);
        cairo_restore(cr);
    }
    /* Data, clipped to the frame. */
    cairo_save(cr);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_clip(cr);
    for (size_t s = 0; s < p->n_series; s++) {
        const dp_plot_series *se = &p->series[s];
        const double *c = palette[s % (sizeof palette / sizeof *palette)];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2);
        if (!se->no_line && se->n > 1) {
            for (size_t i = 0; i < se->n; i++)
                (i ? cairo_line_to : cairo_move_to)(cr, PX(se->x[i]), PY(se->y[i]));
            cairo_stroke(cr);
        }
        if (se->markers)
            for (size_t i = 0; i < se->n; i++) {
                cairo_arc(cr, PX(se->x[i]), PY(se->y[i]), 4, 0, 2 * M_PI);
                cairo_fill(cr);
            }
    }
    cairo_restore(cr);
    cairo_set_font_size(cr, 11);
    for (size_t s = 0; s < p->n_series; s++) {
        const dp_plot_series *se = &p->series[s];
        if (!se->labels) continue;
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        for (size_t i = 0; i < se->n; i++)
            if (se->labels[i]) {
                /* Right of the point, or left of it where the frame ends. */
                double px = PX(se->x[i]) + 6;
                cairo_text_extents(cr, se->labels[i], &ext);
                if (px + ext.x_advance > R - 2) px = PX(se->x[i]) - 6 - ext.x_advance;
                cairo_move_to(cr, px, PY(se->y[i]) - 6);
                cairo_show_text(cr, se->labels[i]);
            }
    }
    /* Legend in the corner of the frame with the fewest points under it. */
    double lw = 0, lh = 0;
    for (size_t s = 0; s < p->n_series; s++)
        if (p->series[s].name) {
            cairo_text_extents(cr, p->series[s].name, &ext);
            lw = fmax(lw, ext.x_advance + 40);
            lh += 18;
        }
    int corner = 0;
    size_t best = SIZE_MAX;
    for (int k = 0; k < 4 && lh > 0; k++) {
        double x0 = k & 1 ? L : R - lw, y0 = k & 2 ? B - lh - 8 : T;
        size_t cnt = 0;
        for (size_t s = 0; s < p->n_series; s++)
            for (size_t i = 0; i < p->series[s].n; i++) {
                double px = PX(p->series[s].x[i]), py = PY(p->series[s].y[i]);
                cnt += px >= x0 - 30 && px <= x0 + lw && py >= y0 - 10 && py <= y0 + lh + 10;
            }
        if (cnt < best) {
            best = cnt;
            corner = k;
        }
    }
    double ly = (corner & 2 ? B - lh - 8 : T) + 18;
    for (size_t s = 0; s < p->n_series; s++) {
        const dp_plot_series *se = &p->series[s];
        if (!se->name) continue;
        const double *c = palette[s % (sizeof palette / sizeof *palette)];
        cairo_text_extents(cr, se->name, &ext);
        double lx = corner & 1 ? L + 34 : R - 12 - ext.x_advance;
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_rectangle(cr, lx - 22, ly - 8, 16, 4);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_move_to(cr, lx, ly - 2);
        cairo_show_text(cr, se->name);
        ly += 18;
    }
#undef PX
#undef PY
}

int dp_plot_png(const char *out_png, const dp_plot_panel *panels, size_t n_panels, int width,
                int height)
{
    if (!out_png || !panels || n_panels < 1 || n_panels > MAX_PANELS)
        return dp_set_error(DP_ERR_INVALID, "plot: 1..%d panels and an output path", MAX_PANELS);
    if (width <= 0) width = 640 * (int)n_panels;
    if (height <= 0) height = 480;
    if (width > 8192 || height > 8192)
        return dp_set_error(DP_ERR_INVALID, "plot: %dx%d is too large", width, height);
    for (size_t i = 0; i < n_panels; i++) {
        int rc = check_panel(&panels[i]);
        if (rc) return rc;
    }
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double pw = (double)width / (double)n_panels;
    for (size_t i = 0; i < n_panels; i++)
        draw_panel(cr, &panels[i], pw * (double)i, 0, pw, height);
    cairo_status_t st = cairo_status(cr);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png(s, out_png);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS)
        return dp_set_error(DP_ERR_IO, "%s: cannot write the plot: %s", out_png,
                            cairo_status_to_string(st));
    return 0;
}
