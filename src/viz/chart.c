/* Line and scatter charts with cairo (see include/doppel/chart.h). */
#include "doppel/chart.h"
#include "util/util.h"

#include <cairo.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PANELS 8
#define MAX_SERIES 64
#define MAX_TICKS 128
#define MARKER_R 4.0

dp_chart_panel dp_chart_default_panel(void)
{
    dp_chart_panel p = {0};
    p.x_min = p.x_max = p.y_min = p.y_max = NAN;
    return p;
}

/* tab10: distinct in colour; the marker shape changes with every series. */
static const double PALETTE[10][3] = {{0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17},
                                      {0.84, 0.15, 0.16}, {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29},
                                      {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50}, {0.74, 0.74, 0.13},
                                      {0.09, 0.75, 0.81}};

typedef struct axis {
    double lo, hi; /* in data units */
    bool log;
    double a, b; /* pixel range */
} axis;

typedef struct tick {
    double v;
    bool major;    /* darker grid line */
    bool labelled; /* number printed */
} tick;

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

static bool point_ok(const axis *ax, const axis *ay, const dp_chart_series *s, size_t i)
{
    return usable(ax, s->x[i]) && usable(ay, s->y[i]);
}

/* k and M for round thousands and millions (q/s axes); otherwise as many
 * decimals as the tick step needs, so a column of labels reads alike. */
static void fmt_num(char *buf, size_t cap, double v, double step)
{
    double a = fabs(v);
    if (a >= 1e6 && fmod(a, 1e5) == 0)
        snprintf(buf, cap, "%gM", v / 1e6);
    else if (a >= 1e3 && fmod(a, 100) == 0)
        snprintf(buf, cap, "%gk", v / 1e3);
    else if (step >= 1)
        snprintf(buf, cap, "%.0f", v);
    else if (step <= 0 || step < 1e-4) /* log axis: 1, 2 or 5 x 10^k as it is */
        snprintf(buf, cap, "%g", v);
    else
        snprintf(buf, cap, "%.*f", (int)ceil(-log10(step) - 1e-9), v);
}

/* Round the data range out to something that reads well; a fixed bound is
 * kept as given. */
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
        if (hi <= lo) {
            double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
            lo -= d;
            hi += d;
        }
        double pad = (hi - lo) * 0.04;
        lo -= pad;
        hi += pad;
    }
    ax->lo = isnan(want_lo) || (ax->log && !(want_lo > 0)) ? lo : want_lo;
    ax->hi = isnan(want_hi) || (ax->log && !(want_hi > 0)) ? hi : want_hi;
    if (!(ax->hi > ax->lo)) ax->hi = ax->log ? ax->lo * 10 : ax->lo + 1;
}

static double nice_step(double range, int target)
{
    double raw = range / target;
    if (!(raw > 0)) return 1;
    double mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* Ticks for an axis about px pixels long, about spacing px apart; *step is the linear step (0 on a
 * log axis, whose values carry their own precision). */
static size_t ticks(const axis *ax, double px, double spacing, tick *t, double *step)
{
    size_t n = 0;
    *step = 0;
    if (ax->log) {
        double span = log10(ax->hi) - log10(ax->lo);
        size_t labelled = 0;
        for (int e = (int)floor(log10(ax->lo)); e <= (int)ceil(log10(ax->hi)); e++)
            for (int m = 1; m < 10 && n < MAX_TICKS; m++) {
                double v = m * pow(10, e);
                if (v < ax->lo * 0.999 || v > ax->hi * 1.001) continue;
                bool lab = m == 1 || (span <= 3.5 && (m == 2 || m == 5));
                t[n++] = (tick){v, m == 1, lab};
                labelled += lab;
            }
        /* less than a decade or so: number every line there is */
        if (labelled < 2)
            for (size_t i = 0; i < n; i++)
                t[i].labelled = true;
        return n;
    }
    int target = (int)(px / spacing);
    target = target < 3 ? 3 : target > 10 ? 10 : target;
    double s = nice_step(ax->hi - ax->lo, target);
    double k0 = ceil(ax->lo / s - 1e-9);
    for (double k = k0; n < MAX_TICKS; k++) {
        double v = k * s;
        if (v > ax->hi + s * 1e-9) break;
        t[n++] = (tick){fabs(v) < s * 1e-9 ? 0 : v, true, true};
    }
    *step = s;
    return n;
}

static void marker(cairo_t *cr, size_t s, double x, double y)
{
    double r = MARKER_R;
    switch ((s + s / 10) % 4) {
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

static void set_colour(cairo_t *cr, size_t s)
{
    const double *c = PALETTE[s % 10];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
}

/* A legend entry's sample: the series' line, marker or both. */
static void legend_key(cairo_t *cr, const dp_chart_series *se, size_t s, double x, double y)
{
    set_colour(cr, s);
    if (se->style != DP_CHART_MARKERS) {
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, x, y);
        cairo_line_to(cr, x + 24, y);
        cairo_stroke(cr);
    }
    if (se->style != DP_CHART_LINE) marker(cr, s, x + 12, y);
}

static double text_w(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

static int check_panel(const char *out_png, const dp_chart_panel *p, size_t pi, axis *ax, axis *ay)
{
    if (p->n_series > MAX_SERIES || (p->n_series && !p->series))
        return dp_set_error(DP_ERR_INVALID, "%s: panel %zu: %zu series (at most %d)", out_png, pi,
                            p->n_series, MAX_SERIES);
    ax->log = p->log_x;
    ay->log = p->log_y;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    size_t points = 0;
    for (size_t s = 0; s < p->n_series; s++) {
        const dp_chart_series *se = &p->series[s];
        if (se->n && (!se->x || !se->y))
            return dp_set_error(DP_ERR_INVALID, "%s: panel %zu series %zu: %zu points, no data",
                                out_png, pi, s, se->n);
        if ((unsigned)se->style > DP_CHART_MARKERS)
            return dp_set_error(DP_ERR_INVALID, "%s: panel %zu series %zu: unknown style %d",
                                out_png, pi, s, (int)se->style);
        for (size_t i = 0; i < se->n; i++) {
            if (!point_ok(ax, ay, se, i)) continue;
            xlo = fmin(xlo, se->x[i]);
            xhi = fmax(xhi, se->x[i]);
            ylo = fmin(ylo, se->y[i]);
            yhi = fmax(yhi, se->y[i]);
            points++;
        }
    }
    if (!points)
        return dp_set_error(DP_ERR_INVALID, "%s: panel %zu: nothing to plot (no finite point%s)",
                            out_png, pi, p->log_x || p->log_y ? ", or none > 0 on a log axis" : "");
    fit_axis(ax, xlo, xhi, p->x_min, p->x_max);
    fit_axis(ay, ylo, yhi, p->y_min, p->y_max);
    return 0;
}

static void draw_panel(cairo_t *cr, const dp_chart_panel *p, axis ax, axis ay, double ox, double w,
                       double H, double title_size)
{
    char buf[48];
    tick tx[MAX_TICKS], ty[MAX_TICKS];
    double sx, sy;

    /* left margin from the widest y tick label */
    cairo_set_font_size(cr, 12);
    size_t nty = ticks(&ay, H * 0.7, 70, ty, &sy);
    double tick_w = 0;
    for (size_t i = 0; i < nty; i++)
        if (ty[i].labelled) {
            fmt_num(buf, sizeof buf, ty[i].v, sy);
            tick_w = fmax(tick_w, text_w(cr, buf));
        }

    /* legend size; it goes right of the frame when asked or when it would
     * take much of the frame */
    cairo_set_font_size(cr, 13);
    double leg_w = 0, leg_h = 0;
    for (size_t s = 0; s < p->n_series; s++)
        if (p->series[s].name) {
            leg_w = fmax(leg_w, text_w(cr, p->series[s].name) + 44);
            leg_h += 22;
        }
    leg_w = fmin(leg_w, w * 0.4);
    double L = ox + 16 + (p->y_label ? 24 : 0) + tick_w + 8;
    double T = 22 + (p->title ? title_size + 14 : 0) + (p->subtitle ? 20 : 0);
    double B = H - (p->x_label ? 62 : 36);
    double R = ox + w - 24;
    bool right = p->legend == DP_CHART_LEGEND_RIGHT;
    if (p->legend == DP_CHART_LEGEND_AUTO && leg_h > 0)
        right = leg_w > (R - L) * 0.4 || leg_h > (B - T) * 0.5;
    if (right && leg_h > 0) R -= leg_w;
    ax.a = L;
    ax.b = R;
    ay.a = B;
    ay.b = T;

    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    if (p->title) {
        cairo_set_font_size(cr, title_size);
        cairo_move_to(cr, L, 14 + title_size);
        cairo_show_text(cr, p->title);
    }
    if (p->subtitle) {
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        cairo_set_font_size(cr, 13);
        cairo_move_to(cr, L, (p->title ? 14 + title_size + 8 : 14) + 14);
        cairo_show_text(cr, p->subtitle);
    }

    /* grid and tick labels */
    size_t ntx = ticks(&ax, R - L, 100, tx, &sx);
    cairo_set_font_size(cr, 12);
    cairo_set_line_width(cr, 1);
    for (int dim = 0; dim < 2; dim++) {
        const axis *a = dim ? &ay : &ax;
        const tick *t = dim ? ty : tx;
        size_t nt = dim ? nty : ntx;
        double step = dim ? sy : sx;
        for (size_t i = 0; i < nt; i++) {
            double px = floor(to_px(a, t[i].v)) + 0.5, g = t[i].major ? 0.86 : 0.94;
            cairo_set_source_rgb(cr, g, g, g);
            if (dim) {
                cairo_move_to(cr, L, px);
                cairo_line_to(cr, R, px);
            } else {
                cairo_move_to(cr, px, T);
                cairo_line_to(cr, px, B);
            }
            cairo_stroke(cr);
            if (!t[i].labelled) continue;
            fmt_num(buf, sizeof buf, t[i].v, step);
            double tw = text_w(cr, buf);
            cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
            if (dim)
                cairo_move_to(cr, L - 8 - tw, px + 4);
            else
                cairo_move_to(cr, px - tw / 2, B + 18);
            cairo_show_text(cr, buf);
        }
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 14);
    if (p->x_label) {
        cairo_move_to(cr, (L + R) / 2 - text_w(cr, p->x_label) / 2, B + 44);
        cairo_show_text(cr, p->x_label);
    }
    if (p->y_label) {
        cairo_save(cr);
        cairo_move_to(cr, ox + 28, (T + B) / 2 + text_w(cr, p->y_label) / 2);
        cairo_rotate(cr, -M_PI / 2);
        cairo_show_text(cr, p->y_label);
        cairo_restore(cr);
    }

    /* the data, clipped to the frame */
    cairo_save(cr);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (size_t s = 0; s < p->n_series; s++) {
        const dp_chart_series *se = &p->series[s];
        set_colour(cr, s);
        if (se->style != DP_CHART_MARKERS) {
            cairo_set_line_width(cr, 2);
            bool pen = false;
            for (size_t i = 0; i < se->n; i++) {
                if (!point_ok(&ax, &ay, se, i)) continue;
                (pen ? cairo_line_to : cairo_move_to)(cr, to_px(&ax, se->x[i]),
                                                      to_px(&ay, se->y[i]));
                pen = true;
            }
            cairo_stroke(cr);
        }
        if (se->style != DP_CHART_LINE)
            for (size_t i = 0; i < se->n; i++)
                if (point_ok(&ax, &ay, se, i))
                    marker(cr, s, to_px(&ax, se->x[i]), to_px(&ay, se->y[i]));
    }
    cairo_restore(cr);

    /* point labels: above right of the point, else the first of below
     * right, above left, below left that stays in the frame and off the
     * labels already placed (the first 256 are remembered) */
    cairo_set_font_size(cr, 12);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    double placed[256][4];
    size_t np = 0;
    for (size_t s = 0; s < p->n_series; s++) {
        const dp_chart_series *se = &p->series[s];
        if (!se->labels) continue;
        for (size_t i = 0; i < se->n; i++) {
            if (!se->labels[i] || !point_ok(&ax, &ay, se, i)) continue;
            double x = to_px(&ax, se->x[i]), y = to_px(&ay, se->y[i]);
            if (x < L || x > R || y < T || y > B) continue;
            double tw = text_w(cr, se->labels[i]), bx = x + 6, by = y - 7;
            for (int c = 0; c < 4; c++) {
                double cx = c & 2 ? x - 6 - tw : x + 6, cy = c & 1 ? y + 16 : y - 7;
                bool ok = cx >= L + 2 && cx + tw <= R - 2 && cy - 11 >= T + 2 && cy + 3 <= B - 2;
                for (size_t k = 0; k < np && ok; k++)
                    ok = cx + tw < placed[k][0] || cx > placed[k][2] || cy + 3 < placed[k][1] ||
                         cy - 11 > placed[k][3];
                if (ok || c == 0) {
                    bx = cx;
                    by = cy;
                }
                if (ok) break;
            }
            if (np < 256) {
                placed[np][0] = bx;
                placed[np][1] = by - 11;
                placed[np][2] = bx + tw;
                placed[np++][3] = by + 3;
            }
            cairo_move_to(cr, bx, by);
            cairo_show_text(cr, se->labels[i]);
        }
    }

    if (leg_h <= 0) return;
    cairo_set_font_size(cr, 13);
    double lx, ly;
    if (right) {
        lx = R + 16;
        ly = T + 12;
    } else {
        /* inside: the corner with the fewest points under the box */
        double bw = leg_w + 8, bh = leg_h + 6;
        size_t best = SIZE_MAX;
        int corner = 0;
        for (int k = 0; k < 4; k++) {
            double x0 = k & 1 ? L + 8 : R - 8 - bw, y0 = k & 2 ? B - 8 - bh : T + 8;
            size_t cnt = 0;
            for (size_t s = 0; s < p->n_series; s++)
                for (size_t i = 0; i < p->series[s].n; i++) {
                    if (!point_ok(&ax, &ay, &p->series[s], i)) continue;
                    double px = to_px(&ax, p->series[s].x[i]), py = to_px(&ay, p->series[s].y[i]);
                    cnt += px >= x0 - 8 && px <= x0 + bw + 8 && py >= y0 - 8 && py <= y0 + bh + 8;
                }
            if (cnt < best) {
                best = cnt;
                corner = k;
            }
        }
        double x0 = corner & 1 ? L + 8 : R - 8 - bw, y0 = corner & 2 ? B - 8 - bh : T + 8;
        cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
        cairo_rectangle(cr, x0, y0, bw, bh);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
        cairo_set_line_width(cr, 1);
        cairo_stroke(cr);
        lx = x0 + 8;
        ly = y0 + 14;
    }
    for (size_t s = 0; s < p->n_series; s++) {
        const dp_chart_series *se = &p->series[s];
        if (!se->name) continue;
        legend_key(cr, se, s, lx, ly);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_move_to(cr, lx + 30, ly + 4.5);
        cairo_show_text(cr, se->name);
        ly += 22;
    }
}

typedef struct png_buf {
    unsigned char *data;
    size_t len, cap;
} png_buf;

static cairo_status_t png_append(void *closure, const unsigned char *data, unsigned int len)
{
    png_buf *b = closure;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + len)
            cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) return CAIRO_STATUS_NO_MEMORY;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return CAIRO_STATUS_SUCCESS;
}

int dp_chart_png(const char *out_png, const dp_chart_panel *panels, size_t n_panels, int width,
                 int height)
{
    if (!out_png) return dp_set_error(DP_ERR_INVALID, "dp_chart_png: no output path");
    if (!panels || n_panels < 1 || n_panels > MAX_PANELS)
        return dp_set_error(DP_ERR_INVALID, "%s: %zu panels (1..%d)", out_png, n_panels,
                            MAX_PANELS);
    int W = width > 0 ? width : n_panels == 1 ? 1000 : 700 * (int)n_panels;
    int H = height > 0 ? height : n_panels == 1 ? 700 : 520;
    if (W < 250 * (int)n_panels || H < 200 || W > 8000 || H > 8000)
        return dp_set_error(DP_ERR_INVALID, "%s: size %dx%d is not in %dx200..8000x8000", out_png,
                            W, H, 250 * (int)n_panels);
    axis ax[MAX_PANELS], ay[MAX_PANELS];
    for (size_t i = 0; i < n_panels; i++) {
        int rc = check_panel(out_png, &panels[i], i, &ax[i], &ay[i]);
        if (rc) return rc;
    }

    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surf);
        return dp_set_error(DP_ERR_NOMEM, "%s: cannot make a %dx%d image", out_png, W, H);
    }
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    double pw = (double)W / (double)n_panels;
    for (size_t i = 0; i < n_panels; i++)
        draw_panel(cr, &panels[i], ax[i], ay[i], pw * (double)i, pw, H, n_panels == 1 ? 19 : 16);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);

    /* encode in memory, then write beside the target and rename */
    png_buf b = {0};
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png_stream(surf, png_append, &b);
    cairo_surface_destroy(surf);
    int rc = 0;
    if (st != CAIRO_STATUS_SUCCESS)
        rc = dp_set_error(st == CAIRO_STATUS_NO_MEMORY ? DP_ERR_NOMEM : DP_ERR_BACKEND,
                          "%s: cannot draw or encode the PNG: %s", out_png,
                          cairo_status_to_string(st));
    else
        rc = dp_write_file_atomic(out_png, b.data, b.len);
    free(b.data);
    return rc;
}
