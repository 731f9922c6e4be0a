/* doppel viz: pictures people would rather look at than read.
 *
 * dp_viz_grid() draws images as a labelled grid PNG (the chapter's
 * plot_images): a query and its neighbours, a near-duplicate group, a class.
 * Thumbnails come from the image module (shrink-on-load, so a grid of 12 MP
 * photos costs milliseconds per cell); an image that cannot be read is drawn
 * as a grey cell saying so, never an error for the whole grid. */
#ifndef DOPPEL_VIZ_H
#define DOPPEL_VIZ_H

#include "doppel/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_grid_cell {
    const char *image_path; /* file to draw; NULL draws an empty cell */
    const char *caption;    /* first line under the image (may be NULL) */
    const char *caption2;   /* second line, smaller (may be NULL) */
    int highlight;          /* 1: frame the cell (e.g. the query) */
} dp_grid_cell;

typedef struct dp_grid_params {
    int columns;        /* 0 = n up to 6 per row */
    int thumb;          /* cell image size in px; 0 = 192 */
    const char *title;  /* drawn across the top; may be NULL */
} dp_grid_params;

DP_API dp_grid_params dp_grid_default_params(void);
/* Write the grid to out_png (atomically). */
DP_API int dp_viz_grid(const char *out_png, const dp_grid_cell *cells, size_t n,
                       const dp_grid_params *p);

#ifdef __cplusplus
}
#endif
#endif
