/* clock.h — the monotonic clock every timing in libsetok and its programs uses. */
#ifndef SETOK_CLOCK_H
#define SETOK_CLOCK_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Milliseconds of CLOCK_MONOTONIC: only differences mean anything. */
SETOK_API double setok_clock_ms(void);

#ifdef __cplusplus
}
#endif
#endif
