/* Labelled image grids with cairo (see include/doppel/viz.h). */
#include "doppel/image.h"
#include "doppel/viz.h"
#include "util/util.h"

#include <cairo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

dp_grid_params dp_grid_default_params(void)
{
    dp_grid_params p = {0};
    return p;
}

/* Paint 8-bit RGB into a cairo ARGB32 surface (premultiplied, opaque). */
static cairo_surface_t *rgb_surface(const unsigned char *rgb, int w, int h)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) return s;
    cairo_surface_flush(s);
    unsigned char *d = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(void *)(d + (size_t)y * (size_t)stride);
        const unsigned char *src = rgb + (size_t)y * (size_t)w * 3;
        for (int x = 0; x < w; x++)
            row[x] = 0xFF000000u | (uint32_t)src[3 * x] << 16 | (uint32_t)src[3 * x + 1] << 8 |
                     src[3 * x + 2];
    }
    cairo_surface_mark_dirty(s);
    return s;
}

/* Draw text clipped to max_w, with an ellipsis when it does not fit. */
static void fit_text(cairo_t *cr, const char *text, double x, double y, double max_w)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    cairo_text_extents_t ext;
    cairo_text_extents(cr, buf, &ext);
    size_t n = strlen(buf);
    while (ext.x_advance > max_w && n > 4) {
        n--;
        /* Keep the end of the string: for paths the file name matters most. */
        size_t len = strlen(text);
        snprintf(buf, sizeof buf, "...%s", text + (len - (n - 3 < len ? n - 3 : len)));
        cairo_text_extents(cr, buf, &ext);
    }
    cairo_move_to(cr, x, y);
    cairo_show_text(cr, buf);
}

int dp_viz_grid(const char *out_png, const dp_grid_cell *cells, size_t n, const dp_grid_params *p)
{
    dp_grid_params defaults = dp_grid_default_params();
    if (!p) p = &defaults;
    if (n == 0 || n > 10000)
        return dp_set_error(DP_ERR_INVALID, "%s: grid needs 1..10000 cells", out_png);
    int thumb = p->thumb > 0 ? p->thumb : 192;
    if (thumb > 1024) thumb = 1024;
    int cols = p->columns > 0 ? p->columns : (n < 6 ? (int)n : 6);
    int rows = (int)((n + (size_t)cols - 1) / (size_t)cols);
    const int pad = 10, text_h = 36, title_h = p->title ? 34 : 0;
    int cell_w = thumb + pad, cell_h = thumb + text_h + pad;
    int W = cols * cell_w + pad, H = rows * cell_h + pad + title_h;

    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surf);
        return dp_set_error(DP_ERR_NOMEM, "%s: cannot make a %dx%d image", out_png, W, H);
    }
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    if (p->title) {
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_set_font_size(cr, 18);
        fit_text(cr, p->title, pad, 24, W - 2 * pad);
    }
    for (size_t i = 0; i < n; i++) {
        int cx = pad + (int)(i % (size_t)cols) * cell_w;
        int cy = title_h + pad + (int)(i / (size_t)cols) * cell_h;
        const dp_grid_cell *c = &cells[i];
        unsigned char *rgb = NULL;
        int w = 0, h = 0;
        int ok =
            c->image_path && dp_image_load_rgb(c->image_path, thumb, 0, &rgb, &w, &h, NULL) == 0;
        cairo_set_source_rgb(cr, 0.93, 0.93, 0.93);
        cairo_rectangle(cr, cx, cy, thumb, thumb);
        cairo_fill(cr);
        if (ok) {
            /* Small images (icons, emoji) are scaled up to fill the cell. */
            cairo_surface_t *img = rgb_surface(rgb, w, h);
            double sc = (double)thumb / (w > h ? w : h);
            cairo_save(cr);
            cairo_translate(cr, cx + (thumb - w * sc) / 2, cy + (thumb - h * sc) / 2);
            cairo_scale(cr, sc, sc);
            cairo_set_source_surface(cr, img, 0, 0);
            cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
            cairo_paint(cr);
            cairo_restore(cr);
            cairo_surface_destroy(img);
        } else if (c->image_path) {
            cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
            cairo_set_font_size(cr, 12);
            fit_text(cr, "(cannot read image)", cx + 8, cy + thumb / 2, thumb - 16);
        }
        free(rgb);
        if (c->highlight) {
            cairo_set_source_rgb(cr, 0.85, 0.2, 0.1);
            cairo_set_line_width(cr, 4);
            cairo_rectangle(cr, cx - 2, cy - 2, thumb + 4, thumb + 4);
            cairo_stroke(cr);
        }
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_set_font_size(cr, 13);
        if (c->caption) fit_text(cr, c->caption, cx, cy + thumb + 16, thumb);
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        cairo_set_font_size(cr, 11);
        if (c->caption2) fit_text(cr, c->caption2, cx, cy + thumb + 31, thumb);
    }
    cairo_destroy(cr);

    /* Write beside the target, then rename: a reader never sees half a PNG. */
    size_t len = strlen(out_png) + 16;
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
