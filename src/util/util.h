/* Internal helpers shared by every module: errors, checked arithmetic,
 * whole-file reads with a size cap, atomic writes, hashing, .npy output,
 * CPU feature detection. Not part of the public API. */
#ifndef DP_UTIL_H
#define DP_UTIL_H

#include "doppel/common.h"
#include "doppel/io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define DP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DP_PRINTF(a, b)
#endif

/* Set the thread's last error; returns status so callers can
 * `return dp_set_error(DP_ERR_FORMAT, "...")`. */
int dp_set_error(int status, const char *fmt, ...) DP_PRINTF(2, 3);
/* Prepend context ("dp_model_open: x.onnx") to the current message. */
int dp_prefix_error(int status, const char *fmt, ...) DP_PRINTF(2, 3);
void dp_clear_error(void);

/* Free and null: one cleanup path without double frees. */
#define DP_FREE(p)                                                                                 \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

/* Overflow-checked size arithmetic: false on overflow. */
static inline bool dp_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool dp_add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* Read a whole file into a malloc'd buffer; refuses files above max_bytes. */
int dp_read_file(const char *path, size_t max_bytes, void **data, size_t *size);

/* Write a buffer atomically: temp file in the same directory, fsync, rename,
 * fsync of the directory. */
int dp_write_file_atomic(const char *path, const void *data, size_t size);

/* SHA-256 of a buffer as 64 lowercase hex chars + NUL. */
void dp_sha256_hex(const void *data, size_t size, char out[65]);
/* SHA-256 of a file's contents. */
int dp_sha256_file(const char *path, char out[65]);

/* CPU features, detected once. */
typedef struct dp_cpu {
    bool avx2, fma, avx512f, avx512bw, avx512vl;
} dp_cpu;
const dp_cpu *dp_cpu_features(void);

/* Monotonic seconds. */
double dp_now(void);

#endif
