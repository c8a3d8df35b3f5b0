/* cpu-backend.c — the CPU backends: "cpu" (f32 fast paths on a thread pool,
 * reference fallback) and "cpu-reference" (the double-precision oracle). */
#include <pthread.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu-impl.h"
#include "setok-config.h"

#if SETOK_HAVE_BLAS
#include <cblas.h>
#endif

#define MAX_THREADS 256

/* ---------------------------------------------------------------------------
 * thread pool: workers wait for a generation bump, run their chunk of the
 * current job and count down; the caller runs chunk 0 and waits. */

typedef struct pool {
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    pthread_t threads[MAX_THREADS];
    struct worker_arg {
        struct pool *p;
        int index;
    } args[MAX_THREADS];
    int n_threads; /* including the caller */
    int n_started;
    unsigned long generation;
    int pending;
    bool stop;
    /* the current job */
    setok_range_fn fn;
    void *ctx;
    int64_t n, chunk;
} pool;

typedef struct worker_arg worker_arg;

static void run_chunk(pool *p, int index)
{
    int64_t begin = (int64_t)index * p->chunk;
    int64_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
    if (begin < end)
        p->fn(p->ctx, begin, end);
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    pool *p = wa->p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->stop)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        run_chunk(p, wa->index);
        pthread_mutex_lock(&p->lock);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void pool_destroy(pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

static setok_status pool_create(pool **out, int n_threads, setok_error *err)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return setok_fail(err, SETOK_ERR_NOMEM, "cpu: out of memory");
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n_threads = n_threads;
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = &p->args[i];
        wa->p = p;
        wa->index = i;
        if (pthread_create(&p->threads[p->n_started], NULL, worker_main, wa) != 0)
            break; /* run with the threads we have */
        p->n_started++;
    }
    p->n_threads = p->n_started + 1;
    *out = p;
    return SETOK_OK;
}

typedef struct cpu_state {
    pool *pool;
    pthread_mutex_t job_lock; /* one parallel_for at a time */
} cpu_state;

int setok_cpu_threads(const setok_backend *backend)
{
    const cpu_state *s = backend->impl;
    return s && s->pool ? s->pool->n_threads : 1;
}

void setok_cpu_parallel_for(setok_backend *backend, int64_t n, int64_t min_chunk,
                            setok_range_fn fn, void *ctx)
{
    cpu_state *s = backend ? backend->impl : NULL;
    if (n <= 0)
        return;
    if (min_chunk < 1)
        min_chunk = 1;
    int threads = s && s->pool ? s->pool->n_threads : 1;
    int64_t max_useful = (n + min_chunk - 1) / min_chunk;
    if (threads <= 1 || max_useful <= 1) {
        fn(ctx, 0, n);
        return;
    }
    pool *p = s->pool;
    pthread_mutex_lock(&s->job_lock);
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    int used = threads < max_useful ? threads : (int)max_useful;
    p->chunk = (n + used - 1) / used;
    p->pending = p->n_started;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_chunk(p, 0);
    pthread_mutex_lock(&p->lock);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&s->job_lock);
}

/* ---------------------------------------------------------------------------
 * host memory */

setok_status setok_host_alloc(setok_backend *backend, size_t bytes, void **out, setok_error *err)
{
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = rounded >= bytes ? aligned_alloc(64, rounded ? rounded : 64) : NULL;
    if (!p)
        return setok_fail(err, SETOK_ERR_NOMEM, "cpu: cannot allocate %zu bytes", bytes);
    backend->host_bytes += malloc_usable_size(p);
    *out = p;
    return SETOK_OK;
}

void setok_host_release(setok_backend *backend, void *ptr)
{
    if (ptr)
        backend->host_bytes -= malloc_usable_size(ptr);
    free(ptr);
}

setok_status setok_host_copy(setok_backend *backend, void *dst, const void *src, size_t bytes,
                             setok_error *err)
{
    if (bytes)
        memcpy(dst, src, bytes);
    return SETOK_OK;
}

setok_status setok_host_synchronize(setok_backend *backend, setok_error *err)
{
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * vtables */

static void cpu_destroy(setok_backend *backend)
{
    cpu_state *s = backend->impl;
    if (s) {
        if (s->pool)
            pool_destroy(s->pool);
        pthread_mutex_destroy(&s->job_lock);
        free(s);
    }
    free(backend);
}

static const setok_backend_vtable cpu_vtable = {
    .name = "cpu",
    .is_host = true,
    .destroy = cpu_destroy,
    .alloc = setok_host_alloc,
    .release = setok_host_release,
    .upload = setok_host_copy,
    .download = setok_host_copy,
    .synchronize = setok_host_synchronize,
    .ops = {
        [SETOK_OP_MATMUL] = setok_cpu_matmul,
        [SETOK_OP_ADD] = setok_cpu_binary,
        [SETOK_OP_MUL] = setok_cpu_binary,
        [SETOK_OP_SCALE] = setok_cpu_unary,
        [SETOK_OP_LAYERNORM] = setok_cpu_norm,
        [SETOK_OP_RMSNORM] = setok_cpu_norm,
        [SETOK_OP_GROUPNORM] = setok_cpu_groupnorm,
        [SETOK_OP_SOFTMAX] = setok_cpu_softmax,
        [SETOK_OP_GELU] = setok_cpu_unary,
        [SETOK_OP_GELU_TANH] = setok_cpu_unary,
        [SETOK_OP_QUICK_GELU] = setok_cpu_unary,
        [SETOK_OP_SILU] = setok_cpu_unary,
        [SETOK_OP_RELU] = setok_cpu_unary,
        [SETOK_OP_SWIGLU] = setok_cpu_glu,
        [SETOK_OP_GEGLU] = setok_cpu_glu,
        [SETOK_OP_ROPE] = setok_cpu_rope,
        [SETOK_OP_ATTENTION] = setok_cpu_attention,
        [SETOK_OP_CONV2D] = setok_cpu_conv2d,
        [SETOK_OP_CONV_TRANSPOSE2D] = setok_cpu_conv_transpose2d,
        [SETOK_OP_COPY] = setok_cpu_copy,
        /* small or index ops: the reference loops are fast enough */
        [SETOK_OP_UPSAMPLE_NEAREST] = NULL,
        [SETOK_OP_GET_ROWS] = NULL,
        [SETOK_OP_RESIZE_BICUBIC] = NULL,
        [SETOK_OP_ARGMAX] = NULL,
        [SETOK_OP_TOPK] = NULL,
    },
};

static setok_status cpu_ref_op(setok_backend *backend, const setok_op_desc *desc,
                               setok_error *err)
{
    return setok_ref_ops[desc->op](backend, desc, err);
}

static void ref_destroy(setok_backend *backend)
{
    free(backend);
}

static const setok_backend_vtable ref_vtable = {
    .name = "cpu-reference",
    .is_host = true,
    .destroy = ref_destroy,
    .alloc = setok_host_alloc,
    .release = setok_host_release,
    .upload = setok_host_copy,
    .download = setok_host_copy,
    .synchronize = setok_host_synchronize,
    .ops = {NULL}, /* filled from setok_ref_ops at creation */
};

static setok_backend_vtable ref_vtable_filled;
static setok_backend_vtable cpu_vtable_filled;
static pthread_once_t vtables_once = PTHREAD_ONCE_INIT;

static void fill_vtables(void)
{
    ref_vtable_filled = ref_vtable;
    cpu_vtable_filled = cpu_vtable;
    for (int i = 0; i < SETOK_OP_COUNT; i++) {
        ref_vtable_filled.ops[i] = setok_ref_ops[i];
        if (!cpu_vtable_filled.ops[i])
            cpu_vtable_filled.ops[i] = cpu_ref_op;
    }
}

const char *setok_blas_name(void)
{
#if SETOK_HAVE_BLAS
    static char name[64];
    if (!name[0]) {
        const char *cfg = openblas_get_config();
        snprintf(name, sizeof name, "%s", cfg ? cfg : "OpenBLAS");
        /* openblas_get_config() starts with "OpenBLAS 0.3.21 ..."; keep the name and version */
        char *sp = strchr(name, ' ');
        if (sp && (sp = strchr(sp + 1, ' ')))
            *sp = '\0';
    }
    return name;
#else
    return "none";
#endif
}

setok_status setok_backend_cpu_create(setok_backend **out, int n_threads, setok_error *err)
{
    pthread_once(&vtables_once, fill_vtables);
    *out = NULL;
    if (n_threads <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = online > 0 ? (int)online : 1;
    }
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;
    setok_backend *b = calloc(1, sizeof *b);
    cpu_state *s = calloc(1, sizeof *s);
    if (!b || !s) {
        free(b);
        free(s);
        return setok_fail(err, SETOK_ERR_NOMEM, "cpu: out of memory");
    }
    pthread_mutex_init(&s->job_lock, NULL);
    b->vt = &cpu_vtable_filled;
    b->impl = s;
    setok_status st = pool_create(&s->pool, n_threads, err);
    if (st != SETOK_OK) {
        cpu_destroy(b);
        return st;
    }
#if SETOK_HAVE_BLAS
    openblas_set_num_threads(s->pool->n_threads);
#endif
    snprintf(b->description, sizeof b->description, "CPU, %d thread%s, BLAS: %s",
             s->pool->n_threads, s->pool->n_threads == 1 ? "" : "s", setok_blas_name());
    *out = b;
    return SETOK_OK;
}

setok_status setok_backend_cpu_reference_create(setok_backend **out, setok_error *err)
{
    pthread_once(&vtables_once, fill_vtables);
    setok_backend *b = calloc(1, sizeof *b);
    if (!b)
        return setok_fail(err, SETOK_ERR_NOMEM, "cpu-reference: out of memory");
    b->vt = &ref_vtable_filled;
    snprintf(b->description, sizeof b->description, "CPU reference (double precision, 1 thread)");
    *out = b;
    return SETOK_OK;
}
