/* A minimal test harness for the C ABI tests: each CHECK counts as one
 * assertion; each TEST prints "PASS name" or "FAIL name" and the program
 * exits non-zero if any test failed. */
#ifndef NIMSYNC_TEST_CHECK_H
#define NIMSYNC_TEST_CHECK_H

#include <stdio.h>
#include <string.h>
#include "nimsync.h"

static int check_failures_in_test;
static int tests_passed;
static int tests_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures_in_test++;                                            \
        }                                                                        \
    } while (0)

/* Checks that an expression returns the expected status, printing the
 * library's message when it does not. */
#define CHECK_STATUS(expr, expected)                                             \
    do {                                                                         \
        nimsync_status s_ = (expr);                                              \
        if (s_ != (expected)) {                                                  \
            fprintf(stderr, "  %s:%d: %s returned %s (%s), expected %s\n", __FILE__, \
                    __LINE__, #expr, nimsync_status_str(s_),                     \
                    nimsync_last_error_message(), nimsync_status_str(expected)); \
            check_failures_in_test++;                                            \
        }                                                                        \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, NIMSYNC_STATUS_OK)

/* The last error message mentions `needle`. */
#define CHECK_MESSAGE_HAS(needle)                                                \
    do {                                                                         \
        const char *m_ = nimsync_last_error_message();                           \
        if (m_ == NULL || strstr(m_, (needle)) == NULL) {                        \
            fprintf(stderr, "  %s:%d: last error \"%s\" lacks \"%s\"\n", __FILE__, \
                    __LINE__, m_ ? m_ : "(null)", (needle));                     \
            check_failures_in_test++;                                            \
        }                                                                        \
    } while (0)

#define TEST(fn)                                                                 \
    do {                                                                         \
        check_failures_in_test = 0;                                              \
        fn();                                                                    \
        if (check_failures_in_test == 0) {                                       \
            printf("PASS %s\n", #fn);                                            \
            tests_passed++;                                                      \
        } else {                                                                 \
            printf("FAIL %s\n", #fn);                                            \
            tests_failed++;                                                      \
        }                                                                        \
        fflush(stdout);                                                          \
    } while (0)

#define TEST_EXIT() return tests_failed == 0 ? 0 : 1

#endif
