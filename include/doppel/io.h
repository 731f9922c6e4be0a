/* doppel io: small file helpers the tools around doppel need too. */
#ifndef DOPPEL_IO_H
#define DOPPEL_IO_H

#include "doppel/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write a float32 C-order array as a NumPy .npy (format 1.0) file,
 * atomically (temp file, fsync, rename). */
DP_API int dp_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *dims);

#ifdef __cplusplus
}
#endif
#endif
