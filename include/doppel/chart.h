/* doppel chart: line and scatter charts as PNG through cairo, for the
 * benchmark and evaluation figures (recall against queries/s as
 * ann-benchmarks draws it, the PCA spectrum, the PCA sweep) without Python.
 *
 * A chart is one or more panels side by side. Each panel has its own axes,
 * linear or log on either, ranges from the data (rounded out to quarter
 * decades on a log axis) unless fixed. A series is a polyline, markers, or
 * both, optionally with a text label beside each point. Series take their
 * colour from a fixed palette (tab10) and a marker shape per series, so a
 * dozen curves stay apart in greyscale too. Log axes are ruled at 1..9 times
 * each power of ten and labelled at 1, 2 and 5 (only 1 past 3.5 decades);
 * linear ones at round steps (1, 2, 5 x 10^k). The legend sits inside the
 * frame in the corner with the fewest points under it, or in a column on
 * the right when it would cover too much. The PNG is written atomically
 * (temp file, fsync, rename): a reader never sees half a picture. */
#ifndef DOPPEL_CHART_H
#define DOPPEL_CHART_H

#include "doppel/common.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dp_chart_style {
    DP_CHART_LINE_MARKERS = 0, /* polyline with a marker at each point */
    DP_CHART_LINE = 1,         /* polyline only (dense curves) */
    DP_CHART_MARKERS = 2,      /* markers only (a scatter) */
} dp_chart_style;

typedef enum dp_chart_legend {
    DP_CHART_LEGEND_AUTO = 0,   /* inside if it fits in a corner, else right */
    DP_CHART_LEGEND_INSIDE = 1, /* the emptiest corner of the frame */
    DP_CHART_LEGEND_RIGHT = 2,  /* a column right of the frame */
} dp_chart_legend;

typedef struct dp_chart_series {
    const char *name;    /* legend text; NULL = not in the legend */
    const double *x, *y; /* n points, drawn in the given order */
    size_t n;
    const char *const *labels; /* n texts beside the points (NULL entries skipped), or NULL */
    dp_chart_style style;
} dp_chart_series;

typedef struct dp_chart_panel {
    const char *title, *subtitle;  /* may be NULL */
    const char *x_label, *y_label; /* may be NULL */
    const dp_chart_series *series; /* at most 64 */
    size_t n_series;
    bool log_x, log_y;                 /* logarithmic axes */
    double x_min, x_max, y_min, y_max; /* NAN (the default) = from the data */
    dp_chart_legend legend;
} dp_chart_panel;

DP_API dp_chart_panel dp_chart_default_panel(void);

/* Draw n_panels (1..8) panels side by side into out_png, width x height px
 * in all (0 = 1000 x 700 for one panel, 700 per panel x 520 for more).
 * Points that are not finite, or not positive on a log axis, are skipped;
 * a panel left with no point at all is DP_ERR_INVALID, as are sizes outside
 * 250 px per panel x 200 .. 8000 x 8000. */
DP_API int dp_chart_png(const char *out_png, const dp_chart_panel *panels, size_t n_panels,
                        int width, int height);

#ifdef __cplusplus
}
#endif
#endif
