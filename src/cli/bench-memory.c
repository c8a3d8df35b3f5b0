/* bench-memory.c — memory for `setok bench`: the machine's read bandwidth, the limit
 * of every decode step (each token reads all the weights once), measured by threads
 * summing disjoint parts of a buffer far larger than the caches with the widest
 * vector loads the CPU has; and the memory a benchmark holds. */
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench-direct.h"
#include "bench.h"
#include "cli.h"

typedef struct part
{
  const float *p;
  size_t n;
  float sum;
} part;

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__ ((target ("avx512f"))) static float
sum_avx512 (const float *p, size_t n)
{
  __m512 a = _mm512_setzero_ps (), b = _mm512_setzero_ps (), c = _mm512_setzero_ps (),
         d = _mm512_setzero_ps ();
  size_t i = 0;
  for (; i + 64 <= n; i += 64)
    {
      a = _mm512_add_ps (a, _mm512_load_ps (p + i));
      b = _mm512_add_ps (b, _mm512_load_ps (p + i + 16));
      c = _mm512_add_ps (c, _mm512_load_ps (p + i + 32));
      d = _mm512_add_ps (d, _mm512_load_ps (p + i + 48));
    }
  float s = _mm512_reduce_add_ps (_mm512_add_ps (_mm512_add_ps (a, b), _mm512_add_ps (c, d)));
  for (; i < n; i++)
    s += p[i];
  return s;
}
#endif

static float
sum_plain (const float *p, size_t n)
{
  float s[8] = { 0 };
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++)
      s[j] += p[i + j];
  for (; i < n; i++)
    s[0] += p[i];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static void *
sum_part (void *arg)
{
  part *t = arg;
#if defined(__x86_64__)
  if (__builtin_cpu_supports ("avx512f"))
    {
      t->sum = sum_avx512 (t->p, t->n);
      return NULL;
    }
#endif
  t->sum = sum_plain (t->p, t->n);
  return NULL;
}

double
bench_read_bandwidth (int threads, size_t bytes)
{
  enum
  {
    MAX_THREADS = 256
  };
  if (threads <= 0)
    threads = (int)sysconf (_SC_NPROCESSORS_ONLN);
  threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
  size_t n = bytes / sizeof (float) / 64 * 64;
  float *buf = aligned_alloc (64, n * sizeof *buf);
  if (!buf)
    return -1.0;
  for (size_t i = 0; i < n; i++)
    buf[i] = (float)(i & 7);
#if defined(__x86_64__)
  __builtin_cpu_init ();
#endif
  double best = 0.0;
  for (int rep = 0; rep < 5; rep++)
    {
      pthread_t tid[MAX_THREADS];
      part parts[MAX_THREADS];
      size_t chunk = n / (size_t)threads / 64 * 64;
      double t0 = bench_now ();
      for (int i = 0; i < threads; i++)
        {
          size_t len = i == threads - 1 ? n - (size_t)i * chunk : chunk;
          parts[i] = (part){ buf + (size_t)i * chunk, len, 0.0f };
          if (i > 0)
            pthread_create (&tid[i], NULL, sum_part, &parts[i]);
        }
      sum_part (&parts[0]);
      for (int i = 1; i < threads; i++)
        pthread_join (tid[i], NULL);
      double s = bench_now () - t0;
      double gbps = (double)(n * sizeof *buf) / s / 1e9;
      best = gbps > best ? gbps : best;
    }
  free (buf);
  return best;
}

double
bench_memory_now (const bench *b)
{
  if (!setok_backend_is_host (b->be))
    {
      setok_cuda_info info;
      setok_cuda_query (&info);
      return (double)(info.total_memory - info.free_memory);
    }
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss * 1024.0;
}

void
bench_memory_row (bench *b, double weights, double arena, double peak)
{
  char wbuf[32], abuf[32], tbuf[32];
  if (b->json)
    {
      cJSON *r = cJSON_CreateObject ();
      cJSON_AddStringToObject (r, "phase", "memory");
      cJSON_AddNumberToObject (r, "weights_bytes", weights);
      cJSON_AddNumberToObject (r, "arena_bytes", arena);
      cJSON_AddNumberToObject (r, "peak_bytes", peak);
      cJSON_AddItemToArray (b->rows, r);
    }
  else
    printf ("%-12s weights %s, arena %s, peak %s (%s)\n", "memory",
            cli_format_bytes (weights, wbuf, sizeof wbuf),
            cli_format_bytes (arena, abuf, sizeof abuf), cli_format_bytes (peak, tbuf, sizeof tbuf),
            setok_backend_is_host (b->be) ? "process peak resident size" : "device memory in use");
}
