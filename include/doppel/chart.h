/* doppel chart: line charts as PNG through cairo, for benchmark results
 * (recall against queries/s, as ann-benchmarks draws them) without Python.
 *
 * Each series is a polyline with a marker per point, coloured from a fixed
 * palette with a marker shape per colour cycle, so a dozen curves stay
 * apart in greyscale too. A log axis gets its ticks at 1, 2 and 5 times the
 * powers of ten it spans, a linear one at round steps. */
#ifndef DOPPEL_CHART_H
#define DOPPEL_CHART_H

#include "doppel/common.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_chart_series {
    const char *name;    /* legend text */
    const double *x, *y; /* n points, drawn in the given order */
    size_t n;
} dp_chart_series;

typedef struct dp_chart_params {
    int width, height;                 /* px; 0 = 1000 x 700 */
    const char *title, *subtitle;      /* may be NULL */
    const char *x_label, *y_label;     /* may be NULL */
    bool log_x, log_y;                 /* logarithmic axes (values must be > 0) */
    double x_min, x_max, y_min, y_max; /* NAN (the default) = from the data */
} dp_chart_params;

DP_API dp_chart_params dp_chart_default_params(void);
/* Write the chart to out_png (atomically: temp file, rename). Points that
 * are not finite, or not positive on a log axis, are skipped. */
DP_API int dp_chart_lines(const char *out_png, const dp_chart_series *series, size_t ns,
                          const dp_chart_params *p);

#ifdef __cplusplus
}
#endif
#endif
