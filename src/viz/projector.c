/* Showing an embedding (see include/doppel/viz.h): pictures of a 2-D layout
 * (scatter by class, images at their positions, a de-overlapped tile grid)
 * and the TensorFlow Embedding Projector export.
 *
 * Thumbnails are decoded once, in parallel (libvips is thread-safe), and
 * shared by every picture. The tile grid assigns cells greedily: images
 * nearest the layout's centre choose first, each taking the free cell
 * closest to where t-SNE put it, found by searching rings of cells outward
 * until no ring can hold a closer one. */
#include "doppel/image.h"
#include "doppel/viz.h"
#include "util/util.h"

#include <cairo.h>
#include <glib.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_POINTS 1000000
#define SPRITE_MAX 8192

dp_layout_params dp_layout_default_params(void)
{
    dp_layout_params p = {0};
    return p;
}

dp_projector_params dp_projector_default_params(void)
{
    dp_projector_params p = {0};
    return p;
}

/* ---- Thumbnails --------------------------------------------------------- */

int dp_viz_load_thumbs(const char *const *paths, size_t n, int size, int threads, dp_thumb **out)
{
    *out = NULL;
    if (n > MAX_POINTS)
        return dp_set_error(DP_ERR_INVALID, "thumbnails: %zu images is too many", n);
    if (size < 4 || size > 1024) return dp_set_error(DP_ERR_INVALID, "thumbnails: size %d", size);
    dp_thumb *t = calloc(n ? n : 1, sizeof *t);
    if (!t) return dp_set_error(DP_ERR_NOMEM, "thumbnails: out of memory");
    int nt = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8)
    for (size_t i = 0; i < n; i++) {
        if (!paths[i] ||
            dp_image_load_rgb(paths[i], size, 0, &t[i].rgb, &t[i].w, &t[i].h, NULL) != 0) {
            t[i].rgb = NULL; /* drawn as a grey tile */
            t[i].w = t[i].h = 0;
        }
    }
    *out = t;
    return 0;
}

void dp_viz_thumbs_free(dp_thumb *t, size_t n)
{
    if (!t) return;
    for (size_t i = 0; i < n; i++)
        free(t[i].rgb);
    free(t);
}

static cairo_surface_t *thumb_surface(const dp_thumb *t)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, t->w, t->h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) return s;
    cairo_surface_flush(s);
    unsigned char *d = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < t->h; y++) {
        uint32_t *row = (uint32_t *)(void *)(d + (size_t)y * (size_t)stride);
        const unsigned char *src = t->rgb + (size_t)y * (size_t)t->w * 3;
        for (int x = 0; x < t->w; x++)
            row[x] = 0xFF000000u | (uint32_t)src[3 * x] << 16 | (uint32_t)src[3 * x + 1] << 8 |
                     src[3 * x + 2];
    }
    cairo_surface_mark_dirty(s);
    return s;
}

/* Draw thumbnail t fitted in a box x, y, size (centred). */
static void draw_thumb(cairo_t *cr, const dp_thumb *t, double x, double y, double size)
{
    if (!t->rgb || t->w <= 0 || t->h <= 0) {
        cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
        cairo_rectangle(cr, x, y, size, size);
        cairo_fill(cr);
        return;
    }
    cairo_surface_t *img = thumb_surface(t);
    double sc = size / (t->w > t->h ? t->w : t->h);
    cairo_save(cr);
    cairo_translate(cr, x + (size - t->w * sc) / 2, y + (size - t->h * sc) / 2);
    cairo_scale(cr, sc, sc);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
    cairo_paint(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);
}

/* ---- Output ------------------------------------------------------------- */

/* Beside the target, then rename: a reader never sees half a PNG. */
static int write_png(cairo_surface_t *surf, const char *out_png)
{
    char *tmp = g_strdup_printf("%s.tmp%d", out_png, (int)getpid());
    cairo_status_t st = cairo_surface_write_to_png(surf, tmp);
    int rc = 0;
    if (st != CAIRO_STATUS_SUCCESS) {
        unlink(tmp);
        rc = dp_set_error(DP_ERR_IO, "%s: cannot write PNG: %s", out_png,
                          cairo_status_to_string(st));
    } else if (rename(tmp, out_png) != 0) {
        unlink(tmp);
        rc = dp_set_error(DP_ERR_IO, "%s: cannot rename the finished PNG into place", out_png);
    }
    g_free(tmp);
    return rc;
}

static cairo_surface_t *new_canvas(int w, int h, const char *out_png, int *rc)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        *rc = dp_set_error(DP_ERR_NOMEM, "%s: cannot make a %dx%d image", out_png, w, h);
        return NULL;
    }
    *rc = 0;
    return s;
}

/* Bounds of the layout, to map it into a square keeping the aspect. */
typedef struct frame {
    double x0, y0, scale, ox, oy;
} frame;

static frame fit(const float *xy, size_t n, double left, double top, double size)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        x0 = fmin(x0, xy[2 * i]);
        x1 = fmax(x1, xy[2 * i]);
        y0 = fmin(y0, xy[2 * i + 1]);
        y1 = fmax(y1, xy[2 * i + 1]);
    }
    double span = fmax(x1 - x0, y1 - y0);
    if (!(span > 0)) span = 1;
    frame f = {x0, y0, size / span, left, top};
    f.ox += (size - (x1 - x0) * f.scale) / 2;
    f.oy += (size - (y1 - y0) * f.scale) / 2;
    return f;
}

static void place(const frame *f, const float *xy, size_t i, double *x, double *y)
{
    *x = f->ox + (xy[2 * i] - f->x0) * f->scale;
    *y = f->oy + (xy[2 * i + 1] - f->y0) * f->scale;
}

static int check_xy(const char *out_png, const float *xy, size_t n)
{
    if (n == 0 || n > MAX_POINTS)
        return dp_set_error(DP_ERR_INVALID, "%s: needs 1..%d points", out_png, MAX_POINTS);
    for (size_t i = 0; i < 2 * n; i++)
        if (!isfinite(xy[i]))
            return dp_set_error(DP_ERR_INVALID, "%s: point %zu is not finite", out_png, i / 2);
    return 0;
}

/* ---- Scatter by class --------------------------------------------------- */

/* Tableau's 20 colours for up to 20 classes; beyond, hues spread by the
 * golden angle with alternating lightness so neighbours in the list differ. */
static void class_colour(size_t c, size_t ncls, double rgb[3])
{
    static const unsigned tab20[20] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                       0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf,
                                       0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896, 0xc5b0d5,
                                       0xc49c94, 0xf7b6d2, 0xc7c7c7, 0xdbdb8d, 0x9edae5};
    if (ncls <= 20) {
        unsigned v = tab20[c];
        rgb[0] = (v >> 16) / 255.0;
        rgb[1] = (v >> 8 & 255) / 255.0;
        rgb[2] = (v & 255) / 255.0;
        return;
    }
    double h = fmod((double)c * 137.508, 360.0) / 60.0, s = 0.75,
           l = c % 3 == 0   ? 0.35
               : c % 3 == 1 ? 0.5
                            : 0.65;
    double C = (1 - fabs(2 * l - 1)) * s, X = C * (1 - fabs(fmod(h, 2) - 1)), m = l - C / 2;
    double r = 0, g = 0, b = 0;
    switch ((int)h) {
    case 0:
        r = C, g = X;
        break;
    case 1:
        r = X, g = C;
        break;
    case 2:
        g = C, b = X;
        break;
    case 3:
        g = X, b = C;
        break;
    case 4:
        r = X, b = C;
        break;
    default:
        r = C, b = X;
        break;
    }
    rgb[0] = r + m;
    rgb[1] = g + m;
    rgb[2] = b + m;
}

typedef struct cls_count {
    size_t c, n;
} cls_count;

static int cmp_count(const void *a, const void *b)
{
    const cls_count *x = a, *y = b;
    if (x->n != y->n) return x->n > y->n ? -1 : 1;
    return x->c < y->c ? -1 : x->c > y->c;
}

int dp_viz_scatter(const char *out_png, const float *xy, const int *cls, size_t n,
                   const char *const *cls_names, size_t ncls, const dp_layout_params *p)
{
    dp_layout_params defaults = dp_layout_default_params();
    if (!p) p = &defaults;
    int rc = check_xy(out_png, xy, n);
    if (rc) return rc;
    const int size = p->size > 0 ? p->size : 1600, pad = 20, legend_w = 440;
    const int title_h = p->title ? 40 : 0;
    cls_count *cc = calloc(ncls ? ncls : 1, sizeof *cc);
    if (!cc) return dp_set_error(DP_ERR_NOMEM, "%s: out of memory", out_png);
    for (size_t c = 0; c < ncls; c++)
        cc[c].c = c;
    for (size_t i = 0; i < n; i++)
        if (cls[i] >= 0 && (size_t)cls[i] < ncls) cc[cls[i]].n++;
    qsort(cc, ncls, sizeof *cc, cmp_count);
    cairo_surface_t *surf =
        new_canvas(size + 2 * pad + legend_w, size + 2 * pad + title_h, out_png, &rc);
    if (!surf) {
        free(cc);
        return rc;
    }
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    if (p->title) {
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_set_font_size(cr, 20);
        cairo_move_to(cr, pad, 28);
        cairo_show_text(cr, p->title);
    }
    frame f = fit(xy, n, pad, pad + title_h, size);
    double r = n > 20000 ? 1.5 : n > 5000 ? 2.5 : 3.5;
    /* Unlabelled first (grey, underneath), then the classes. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            int c = cls[i];
            bool has = c >= 0 && (size_t)c < ncls;
            if (has != (pass == 1)) continue;
            double rgb[3] = {0.75, 0.75, 0.75}, x, y;
            if (has) class_colour((size_t)c, ncls, rgb);
            place(&f, xy, i, &x, &y);
            cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.85);
            cairo_arc(cr, x, y, r, 0, 2 * M_PI);
            cairo_fill(cr);
        }
    /* Legend: the largest classes. */
    size_t shown = ncls < 40 ? ncls : 40;
    double lx = size + 2 * pad, ly = pad + title_h + 10;
    double step = fmin(24, (size - 40.0) / (double)(shown ? shown : 1));
    cairo_set_font_size(cr, fmin(14, step - 3));
    for (size_t k = 0; k < shown && cc[k].n; k++) {
        double rgb[3];
        class_colour(cc[k].c, ncls, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_arc(cr, lx + 6, ly + step * (double)k, fmin(6, step / 3), 0, 2 * M_PI);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        char buf[96];
        snprintf(buf, sizeof buf, "%.56s (%zu)", cls_names[cc[k].c], cc[k].n);
        cairo_move_to(cr, lx + 18, ly + step * (double)k + 4);
        cairo_show_text(cr, buf);
    }
    if (ncls > shown) {
        char buf[64];
        snprintf(buf, sizeof buf, "+ %zu smaller classes", ncls - shown);
        cairo_move_to(cr, lx + 18, ly + step * (double)shown + 4);
        cairo_show_text(cr, buf);
    }
    cairo_destroy(cr);
    rc = write_png(surf, out_png);
    cairo_surface_destroy(surf);
    free(cc);
    return rc;
}

/* ---- Images at their positions ------------------------------------------ */

int dp_viz_image_map(const char *out_png, const float *xy, const dp_thumb *thumbs, size_t n,
                     const dp_layout_params *p)
{
    dp_layout_params defaults = dp_layout_default_params();
    if (!p) p = &defaults;
    int rc = check_xy(out_png, xy, n);
    if (rc) return rc;
    const int size = p->size > 0 ? p->size : 1600, thumb = p->thumb > 0 ? p->thumb : 48;
    const int title_h = p->title ? 40 : 0;
    int W = size + thumb, H = size + thumb + title_h;
    cairo_surface_t *surf = new_canvas(W, H, out_png, &rc);
    if (!surf) return rc;
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    if (p->title) {
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_set_font_size(cr, 20);
        cairo_move_to(cr, 10, 28);
        cairo_show_text(cr, p->title);
    }
    frame f = fit(xy, n, thumb / 2.0, thumb / 2.0 + title_h, size);
    for (size_t i = 0; i < n; i++) {
        double x, y;
        place(&f, xy, i, &x, &y);
        draw_thumb(cr, &thumbs[i], x - thumb / 2.0, y - thumb / 2.0, thumb);
    }
    cairo_destroy(cr);
    rc = write_png(surf, out_png);
    cairo_surface_destroy(surf);
    return rc;
}

/* ---- De-overlapped grid -------------------------------------------------- */

typedef struct by_dist {
    double d;
    size_t i;
} by_dist;

static int cmp_by_dist(const void *a, const void *b)
{
    const by_dist *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Greedy assignment of points (in grid units, gx/gy) to free cells of a
 * g x g grid. */
static void assign_cells(const double *gx, const double *gy, size_t n, int g, const by_dist *order,
                         unsigned char *taken, int *cell)
{
    for (size_t o = 0; o < n; o++) {
        size_t i = order[o].i;
        int cx = (int)gx[i], cy = (int)gy[i];
        if (cx >= g) cx = g - 1;
        if (cy >= g) cy = g - 1;
        int best = -1;
        double bd = INFINITY;
        for (int r = 0; r < 2 * g; r++) {
            /* Any cell in ring r is at least r - 1 away (from inside cell cx). */
            if (best >= 0 && (double)(r - 1) > sqrt(bd)) break;
            for (int y = cy - r; y <= cy + r; y++) {
                if (y < 0 || y >= g) continue;
                int step = (y == cy - r || y == cy + r) ? 1 : 2 * r;
                for (int x = cx - r; x <= cx + r; x += step ? step : 1) {
                    if (x < 0 || x >= g || taken[y * g + x]) continue;
                    double dx = x + 0.5 - gx[i], dy = y + 0.5 - gy[i], d = dx * dx + dy * dy;
                    if (d < bd) {
                        bd = d;
                        best = y * g + x;
                    }
                }
            }
        }
        taken[best] = 1;
        cell[i] = best;
    }
}

int dp_viz_tile_grid(const char *out_png, const float *xy, const dp_thumb *thumbs, size_t n,
                     const dp_layout_params *p, int *cell_out)
{
    dp_layout_params defaults = dp_layout_default_params();
    if (!p) p = &defaults;
    int rc = check_xy(out_png, xy, n);
    if (rc) return rc;
    const int thumb = p->thumb > 0 ? p->thumb : 48;
    int g = (int)ceil(sqrt((double)n));
    if ((double)g * thumb > 32767)
        return dp_set_error(DP_ERR_INVALID, "%s: a %d x %d grid of %d px tiles is too large",
                            out_png, g, g, thumb);
    double *gx = malloc(n * sizeof *gx), *gy = malloc(n * sizeof *gy);
    by_dist *order = malloc(n * sizeof *order);
    unsigned char *taken = calloc((size_t)g * (size_t)g, 1);
    int *cell = cell_out ? cell_out : malloc(n * sizeof *cell);
    cairo_surface_t *surf = NULL;
    if (!gx || !gy || !order || !taken || !cell) {
        rc = dp_set_error(DP_ERR_NOMEM, "%s: out of memory", out_png);
        goto done;
    }
    /* Scale each axis to the grid separately: the grid is square, the
     * layout rarely is, and every cell should be usable. */
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        x0 = fmin(x0, xy[2 * i]);
        x1 = fmax(x1, xy[2 * i]);
        y0 = fmin(y0, xy[2 * i + 1]);
        y1 = fmax(y1, xy[2 * i + 1]);
    }
    double sx = x1 > x0 ? g / (x1 - x0) * (1 - 1e-9) : 0,
           sy = y1 > y0 ? g / (y1 - y0) * (1 - 1e-9) : 0;
    for (size_t i = 0; i < n; i++) {
        gx[i] = sx ? (xy[2 * i] - x0) * sx : g / 2.0;
        gy[i] = sy ? (xy[2 * i + 1] - y0) * sy : g / 2.0;
        double dx = gx[i] - g / 2.0, dy = gy[i] - g / 2.0;
        order[i] = (by_dist){dx * dx + dy * dy, i};
    }
    qsort(order, n, sizeof *order, cmp_by_dist);
    assign_cells(gx, gy, n, g, order, taken, cell);

    const int title_h = p->title ? 40 : 0;
    surf = new_canvas(g * thumb, g * thumb + title_h, out_png, &rc);
    if (!surf) goto done;
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    if (p->title) {
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_set_font_size(cr, 20);
        cairo_move_to(cr, 10, 28);
        cairo_show_text(cr, p->title);
    }
    for (size_t i = 0; i < n; i++)
        draw_thumb(cr, &thumbs[i], (cell[i] % g) * thumb, title_h + (cell[i] / g) * thumb, thumb);
    cairo_destroy(cr);
    rc = write_png(surf, out_png);
done:
    if (surf) cairo_surface_destroy(surf);
    free(gx);
    free(gy);
    free(order);
    free(taken);
    if (cell != cell_out) free(cell);
    return rc;
}

/* ---- Embedding Projector ------------------------------------------------ */

typedef struct pentry {
    uint64_t id;
    const char *path;
} pentry;

static int cmp_pentry(const void *a, const void *b)
{
    return strcmp(((const pentry *)a)->path, ((const pentry *)b)->path);
}

/* Tabs and newlines would break the TSV; the projector has no quoting. */
static void tsv_field(GString *s, const char *v)
{
    for (; v && *v; v++)
        g_string_append_c(s, (*v == '\t' || *v == '\n' || *v == '\r') ? ' ' : *v);
}

static int write_text(const char *dir, const char *name, const GString *s)
{
    char *path = g_build_filename(dir, name, NULL);
    int rc = dp_write_file_atomic(path, s->str, s->len);
    g_free(path);
    return rc;
}

int dp_viz_projector(const dp_index *ix, const char *out_dir, const dp_projector_params *p)
{
    dp_projector_params defaults = dp_projector_default_params();
    if (!p) p = &defaults;
    size_t n = dp_index_count(ix), dim = dp_index_dim(ix);
    if (!n) return dp_set_error(DP_ERR_INVALID, "%s: the index is empty", dp_index_path(ix));
    if (g_mkdir_with_parents(out_dir, 0777) != 0)
        return dp_set_error(DP_ERR_IO, "%s: cannot create the folder", out_dir);
    pentry *e = malloc(n * sizeof *e);
    char **paths = NULL;
    dp_thumb *thumbs = NULL;
    GString *vec = g_string_new(NULL), *meta = g_string_new("path\tlabel\n");
    cairo_surface_t *surf = NULL;
    int rc = 0;
    size_t cur = 0, m = 0;
    dp_index_entry en;
    if (!e) {
        rc = dp_set_error(DP_ERR_NOMEM, "%s: out of memory", out_dir);
        goto done;
    }
    while ((rc = dp_index_next(ix, &cur, &en)) == 1)
        e[m++] = (pentry){en.id, en.path ? en.path : ""};
    if (rc < 0) goto done;
    rc = 0;
    /* A seeded sample that does not depend on the order ids were given in. */
    qsort(e, m, sizeof *e, cmp_pentry);
    size_t cap = p->sample ? p->sample : 10000;
    if (m > cap) {
        uint64_t s = p->seed ^ 0x9E3779B97F4A7C15ull;
        for (size_t i = 0; i < cap; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            size_t j = i + (size_t)(s % (m - i));
            pentry t = e[i];
            e[i] = e[j];
            e[j] = t;
        }
        m = cap;
    }
    const char *root = NULL;
    bool sprite = dp_index_get_meta_str(ix, "source.root", &root) == 0 && root && *root;
    if (sprite && !(paths = calloc(m, sizeof *paths))) {
        rc = dp_set_error(DP_ERR_NOMEM, "%s: out of memory", out_dir);
        goto done;
    }
    for (size_t i = 0; i < m; i++) {
        if ((rc = dp_index_get(ix, e[i].id, &en))) goto done;
        for (size_t d = 0; d < dim; d++)
            g_string_append_printf(vec, d ? "\t%.7g" : "%.7g", (double)en.vector[d]);
        g_string_append_c(vec, '\n');
        tsv_field(meta, en.path);
        g_string_append_c(meta, '\t');
        tsv_field(meta, en.label);
        g_string_append_c(meta, '\n');
        if (sprite) paths[i] = g_build_filename(root, en.path, NULL);
    }
    if ((rc = write_text(out_dir, "vectors.tsv", vec)) ||
        (rc = write_text(out_dir, "metadata.tsv", meta)))
        goto done;

    int per_row = (int)ceil(sqrt((double)m)), tile = p->thumb;
    if (tile <= 0) tile = SPRITE_MAX / per_row < 64 ? SPRITE_MAX / per_row : 64;
    if (sprite && (tile < 1 || (long)tile * per_row > SPRITE_MAX)) {
        rc = dp_set_error(DP_ERR_INVALID, "%s: %zu images do not fit a %d px sprite", out_dir, m,
                          SPRITE_MAX);
        goto done;
    }
    if (sprite) {
        if ((rc = dp_viz_load_thumbs((const char *const *)paths, m, tile, p->threads, &thumbs)))
            goto done;
        char *png = g_build_filename(out_dir, "sprite.png", NULL);
        surf = new_canvas(per_row * tile, per_row * tile, png, &rc);
        if (surf) {
            cairo_t *cr = cairo_create(surf);
            cairo_set_source_rgb(cr, 1, 1, 1);
            cairo_paint(cr);
            for (size_t i = 0; i < m; i++)
                draw_thumb(cr, &thumbs[i], (double)(i % (size_t)per_row) * tile,
                           (double)(i / (size_t)per_row) * tile, tile);
            cairo_destroy(cr);
            rc = write_png(surf, png);
        }
        g_free(png);
        if (rc) goto done;
    }
    GString *cfg = g_string_new(NULL);
    g_string_append_printf(cfg,
                           "{\n  \"embeddings\": [\n    {\n      \"tensorName\": \"doppel\",\n"
                           "      \"tensorShape\": [%zu, %zu],\n"
                           "      \"tensorPath\": \"vectors.tsv\",\n"
                           "      \"metadataPath\": \"metadata.tsv\"",
                           m, dim);
    if (sprite)
        g_string_append_printf(cfg,
                               ",\n      \"sprite\": {\n        \"imagePath\": \"sprite.png\",\n"
                               "        \"singleImageDim\": [%d, %d]\n      }",
                               tile, tile);
    g_string_append(cfg, "\n    }\n  ]\n}\n");
    rc = write_text(out_dir, "projector_config.json", cfg);
    g_string_free(cfg, TRUE);
done:
    if (surf) cairo_surface_destroy(surf);
    if (paths)
        for (size_t i = 0; i < m; i++)
            g_free(paths[i]);
    free(paths);
    dp_viz_thumbs_free(thumbs, m);
    g_string_free(vec, TRUE);
    g_string_free(meta, TRUE);
    free(e);
    return rc;
}
