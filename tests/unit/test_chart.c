/* dp_chart_png read back through cairo: the image has the size asked for,
 * each series' colour lands in its own panel and only there, a fixed axis
 * range clips the points outside it, a log axis drops points <= 0, the
 * write leaves no temp file behind, and bad input is refused with the
 * output's name and no file written. */
#define _GNU_SOURCE
#include "check.h"
#include "doppel/chart.h"

#include <cairo.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* tab10's first two colours, as chart.c draws series 0 and 1 */
static const int BLUE[3] = {31, 120, 181}, ORANGE[3] = {255, 128, 13};

/* Pixels of colour c (within 3 per channel) in columns [x0, x1). */
static size_t count_colour(cairo_surface_t *s, const int c[3], int x0, int x1)
{
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *d = cairo_image_surface_get_data(s);
    size_t n = 0;
    for (int y = 0; y < h; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < w; x++) {
            uint32_t px;
            memcpy(&px, d + (size_t)y * stride + 4 * (size_t)x, 4);
            int r = (px >> 16) & 255, g = (px >> 8) & 255, b = px & 255;
            n += abs(r - c[0]) <= 3 && abs(g - c[1]) <= 3 && abs(b - c[2]) <= 3;
        }
    return n;
}

static bool exists(const char *p)
{
    return access(p, F_OK) == 0;
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

int main(void)
{
    char dir[] = "/tmp/dp_chart_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char png[256], bad[256];
    snprintf(png, sizeof png, "%s/two.png", dir);
    snprintf(bad, sizeof bad, "%s/bad.png", dir);

    double x[50], y[50], lx[3] = {-1, 0, 10}, ly[3] = {5, 6, 7};
    const char *labels[50] = {0};
    for (int i = 0; i < 50; i++) {
        x[i] = i + 1;
        y[i] = sqrt(i + 1.0);
    }
    labels[0] = "first";
    labels[49] = "last";
    /* left panel: series 0 (blue) as a labelled line; right panel: series
     * 0 hidden off its fixed range (x_max = 0.5), series 1 (orange) as
     * markers on log-log axes where two of its three points are <= 0 */
    dp_chart_series left = {.name = "sqrt", .x = x, .y = y, .n = 50, .labels = labels};
    dp_chart_series right[2] = {{.x = x, .y = y, .n = 50, .style = DP_CHART_LINE},
                                {.x = lx, .y = ly, .n = 3, .style = DP_CHART_MARKERS}};
    dp_chart_panel p[2] = {dp_chart_default_panel(), dp_chart_default_panel()};
    p[0].title = "left";
    p[0].x_label = "x";
    p[0].y_label = "y";
    p[0].series = &left;
    p[0].n_series = 1;
    p[1].series = right;
    p[1].n_series = 2;
    p[1].log_x = p[1].log_y = true;
    p[1].x_max = 0.5;
    p[1].x_min = 0.01;
    OK(dp_chart_png(png, p, 2, 900, 400));
    CHECK(dir_entries(dir) == 1, "%zu files in %s, want the PNG alone", dir_entries(dir), dir);

    cairo_surface_t *s = cairo_image_surface_create_from_png(png);
    CHECK(cairo_surface_status(s) == CAIRO_STATUS_SUCCESS, "read back: %s",
          cairo_status_to_string(cairo_surface_status(s)));
    if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
        CHECK(cairo_image_surface_get_width(s) == 900 && cairo_image_surface_get_height(s) == 400,
              "size %dx%d", cairo_image_surface_get_width(s), cairo_image_surface_get_height(s));
        size_t bl = count_colour(s, BLUE, 0, 450), br = count_colour(s, BLUE, 450, 900);
        size_t ol = count_colour(s, ORANGE, 0, 450), orr = count_colour(s, ORANGE, 450, 900);
        CHECK(bl > 300, "left panel's line: %zu blue pixels", bl);
        CHECK(br == 0, "right panel's blue series is outside x_max yet %zu pixels show", br);
        CHECK(ol == 0, "orange in the left panel: %zu pixels", ol);
        /* one marker (the point at x = 10 is past x_max too, so only the
         * clipped-out points remain: nothing orange at all) */
        CHECK(orr == 0, "orange points outside the range or <= 0 drawn: %zu pixels", orr);
    }
    cairo_surface_destroy(s);

    /* the same right panel with the range opened: exactly one marker */
    p[1].x_max = NAN;
    OK(dp_chart_png(png, p, 2, 900, 400));
    s = cairo_image_surface_create_from_png(png);
    if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
        size_t orr = count_colour(s, ORANGE, 450, 900), br = count_colour(s, BLUE, 450, 900);
        CHECK(orr > 20 && orr < 120, "one orange marker expected, %zu pixels", orr);
        CHECK(br > 100, "right panel's line with the range open: %zu blue pixels", br);
    }
    cairo_surface_destroy(s);

    /* refusals name the output and write nothing */
    dp_chart_series nothing = {.x = lx, .y = ly, .n = 2}; /* x = -1, 0 */
    dp_chart_panel q = dp_chart_default_panel();
    q.series = &nothing;
    q.n_series = 1;
    q.log_x = true;
    CHECK(dp_chart_png(bad, &q, 1, 0, 0) == DP_ERR_INVALID, "no point > 0 on a log axis");
    CHECK(strstr(dp_last_error(), "bad.png") && strstr(dp_last_error(), "nothing to plot"), "%s",
          dp_last_error());
    q.log_x = false;
    CHECK(dp_chart_png(bad, &q, 1, 100, 100) == DP_ERR_INVALID, "100x100 accepted");
    CHECK(strstr(dp_last_error(), "bad.png"), "%s", dp_last_error());
    dp_chart_panel many[9];
    for (int i = 0; i < 9; i++)
        many[i] = q;
    CHECK(dp_chart_png(bad, many, 9, 0, 0) == DP_ERR_INVALID, "9 panels accepted");
    dp_chart_series nodata = {.n = 4};
    q.series = &nodata;
    CHECK(dp_chart_png(bad, &q, 1, 0, 0) == DP_ERR_INVALID, "series without arrays accepted");
    CHECK(!exists(bad), "%s written by a refused call", bad);
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir.png", dir);
    q.series = &left;
    CHECK(dp_chart_png(nodir, &q, 1, 0, 0) == DP_ERR_IO, "unwritable path");
    CHECK(strstr(dp_last_error(), "dir.png"), "%s", dp_last_error());

    unlink(png);
    rmdir(dir);
    return failures != 0;
}
