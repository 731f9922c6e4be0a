/* doppel: reverse image search in C. This header is the whole public API:
 * if it is not reachable from here, it is not published. */
#ifndef DOPPEL_H
#define DOPPEL_H

#include "doppel/common.h"
#include "doppel/ann.h"
#include "doppel/chart.h"
#include "doppel/dedup.h"
#include "doppel/embed.h"
#include "doppel/eval.h"
#include "doppel/image.h"
#include "doppel/index.h"
#include "doppel/ingest.h"
#include "doppel/io.h"
#include "doppel/model.h"
#include "doppel/pca.h"
#include "doppel/viz.h"

#endif
