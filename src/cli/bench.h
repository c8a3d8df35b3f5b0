/* bench.h — what the `setok bench` suites share (cmd-bench.c). */
#ifndef SETOK_BENCH_H
#define SETOK_BENCH_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "setok/backend.h"
#include "setok/error.h"

typedef struct bench
{
  setok_backend *be;
  setok_dtype dtype;
  double min_time;
  cJSON *rows; /* --json: one object per result */
  bool json;
} bench;

typedef setok_status (*bench_fn) (bench *b, void *ctx, setok_error *err);

/* Seconds per call of fn (batches doubled until one lasts min_time), or a
 * negative number with err set. */
double bench_time_calls (bench *b, bench_fn fn, void *ctx, setok_error *err);

/* The suites. */
setok_status bench_unet (bench *b, bool quick, setok_error *err);

#endif
