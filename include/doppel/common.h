/* doppel common definitions: status codes, errors, version, export macro.
 *
 * Every fallible call returns an int: 0 on success, a negative dp_status on
 * failure. The failing call leaves a message with context in a thread-local
 * buffer that dp_last_error() returns; it stays valid until the next doppel
 * call on the same thread. The library never prints and never exits. */
#ifndef DOPPEL_COMMON_H
#define DOPPEL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define DP_API __declspec(dllexport)
#else
#define DP_API __attribute__((visibility("default")))
#endif

#define DP_VERSION_MAJOR 0
#define DP_VERSION_MINOR 1
#define DP_VERSION_PATCH 0
#define DP_VERSION_STRING "0.1.0"

typedef enum dp_status {
    DP_OK = 0,
    DP_ERR_INVALID = -1,     /* bad argument from the caller */
    DP_ERR_NOMEM = -2,       /* allocation failed or a size cap was hit */
    DP_ERR_IO = -3,          /* open/read/write/fsync/rename failed */
    DP_ERR_FORMAT = -4,      /* malformed or hostile file contents */
    DP_ERR_UNSUPPORTED = -5, /* valid input we do not handle (an op, a dtype) */
    DP_ERR_NOT_FOUND = -6,   /* a named thing (node, id, path) does not exist */
    DP_ERR_BACKEND = -7,     /* oneDNN, libvips or BLAS reported an error */
    DP_ERR_CANCELLED = -8,   /* a callback asked to stop */
    DP_ERR_MISMATCH = -9,    /* e.g. index built with another model */
} dp_status;

/* "0.1.0" */
DP_API const char *dp_version(void);
/* Message of the last failing call on this thread ("" if none). */
DP_API const char *dp_last_error(void);
/* Short name of a status code ("format error"). */
DP_API const char *dp_status_str(int status);

/* Progress callback: done of total units; return nonzero to cancel. */
typedef int (*dp_progress_fn)(uint64_t done, uint64_t total, void *user_data);

#ifdef __cplusplus
}
#endif
#endif
