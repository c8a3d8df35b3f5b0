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
  int threads; /* CPU threads (0: every core) */
  setok_dtype dtype;  /* activations (f32 on the CPU) */
  setok_dtype matrix; /* the weights of linear layers: --dtype, or --weights q8 / q4 */
  double min_time;
  cJSON *rows; /* --json: one object per result */
  bool json;
} bench;

typedef setok_status (*bench_fn) (bench *b, void *ctx, setok_error *err);

/* Seconds per call of fn (batches doubled until one lasts min_time), or a
 * negative number with err set. */
double bench_time_calls (bench *b, bench_fn fn, void *ctx, setok_error *err);

/* GB/s of memory read by threads (0: every core) over a buffer of bytes (bench-membw.c);
 * negative when the buffer cannot be allocated. */
double bench_read_bandwidth (int threads, size_t bytes);

/* Device memory in use (CUDA), else the process's peak resident size, in bytes. */
double bench_memory_now (const bench *b);
/* The "memory" row: weights, arena and the peak (bench_memory_now since before the weights). */
void bench_memory_row (bench *b, double weights, double arena, double peak);

/* The suites. */
setok_status bench_unet (bench *b, bool quick, setok_error *err);
setok_status bench_sam (bench *b, bool quick, setok_error *err);

#endif
