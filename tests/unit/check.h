/* check.h — the CHECK macro of the C unit tests: counts passes and failures
 * and prints the failed condition's message. Each test ends with
 * `printf("%d passed, %d failed\n", passed, failed)`. */
#ifndef SETOK_TESTS_CHECK_H
#define SETOK_TESTS_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        if (cond) {                                                                              \
            passed++;                                                                            \
        } else {                                                                                 \
            failed++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                          \
            printf(__VA_ARGS__);                                                                 \
            printf("\n");                                                                        \
        }                                                                                        \
    } while (0)

#endif
