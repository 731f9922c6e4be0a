/* CHECK(cond, fmt, ...) reports a failed condition with its place and goes
 * on; OK(expr) checks a dp_status call and prints dp_last_error(). The test's
 * main returns failures != 0. */
#ifndef DP_TEST_CHECK_H
#define DP_TEST_CHECK_H

#include "doppel/common.h"

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)
#define OK(expr) CHECK((expr) == 0, "%s", dp_last_error())

#endif
