/* Thread-local last-error buffer behind dp_last_error(). */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char dp_err_buf[1024];

const char *dp_version(void)
{
    return DP_VERSION_STRING;
}

const char *dp_last_error(void)
{
    return dp_err_buf;
}

void dp_clear_error(void)
{
    dp_err_buf[0] = '\0';
}

int dp_set_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dp_err_buf, sizeof dp_err_buf, fmt, ap);
    va_end(ap);
    return status;
}

int dp_prefix_error(int status, const char *fmt, ...)
{
    char prefix[512];
    char old[sizeof dp_err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, dp_err_buf, sizeof old);
    /* Truncation is fine here: the prefix and the start of the message matter most. */
    size_t n = strlen(prefix);
    if (n > sizeof dp_err_buf - 3) n = sizeof dp_err_buf - 3;
    memcpy(dp_err_buf, prefix, n);
    memcpy(dp_err_buf + n, ": ", 2);
    size_t rest = sizeof dp_err_buf - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(dp_err_buf + n + 2, old, m);
    dp_err_buf[n + 2 + m] = '\0';
    return status;
}

const char *dp_status_str(int status)
{
    switch (status) {
    case DP_OK:
        return "ok";
    case DP_ERR_INVALID:
        return "invalid argument";
    case DP_ERR_NOMEM:
        return "out of memory";
    case DP_ERR_IO:
        return "i/o error";
    case DP_ERR_FORMAT:
        return "format error";
    case DP_ERR_UNSUPPORTED:
        return "unsupported";
    case DP_ERR_NOT_FOUND:
        return "not found";
    case DP_ERR_BACKEND:
        return "backend error";
    case DP_ERR_CANCELLED:
        return "cancelled";
    case DP_ERR_MISMATCH:
        return "mismatch";
    default:
        return "unknown error";
    }
}
