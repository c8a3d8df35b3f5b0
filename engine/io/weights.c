/* weights.c — the tensors of one model component: a single .safetensors file,
 * a component folder, or a sharded *.safetensors.index.json, behind one name
 * table; and loading a file tensor into a backend in the dtype a model wants.
 *
 * Shard names come from an untrusted index: they must be plain file names
 * inside the component folder, every tensor the index names must be in its
 * shard, and no tensor may appear in two shards. */
#include "setok/weights.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "io-private.h"
#include "setok/config.h"

#define NAME_MAX_SHOWN 200
/* Each shard stays mapped while the weights are open; real checkpoints have a few hundred. */
#define MAX_SHARDS 4096

struct setok_weights {
    char *path;
    setok_safetensors **files;
    size_t file_count;
    const setok_st_tensor **tensors; /* file by file, each in offset order */
    size_t count;
    setok_io_names index;
};

/* What a component folder may hold, in the order Hugging Face looks. */
static const char *const weight_file_names[] = {
    "model.safetensors",
    "model.safetensors.index.json",
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "adapter_model.safetensors",
};
#define WEIGHT_FILE_NAME_COUNT (sizeof weight_file_names / sizeof weight_file_names[0])

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) {
        size_t d = strlen(dir);
        bool slash = d > 0 && dir[d - 1] == '/';
        snprintf(p, n, "%s%s%s", dir, slash ? "" : "/", name);
    }
    return p;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_regular_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static setok_status add_file(setok_weights *w, const char *path, setok_error *err)
{
    setok_safetensors **files = realloc(w->files, (w->file_count + 1) * sizeof *files);
    if (!files)
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    w->files = files;
    setok_status st = setok_safetensors_open(&w->files[w->file_count], path, err);
    if (st == SETOK_OK)
        w->file_count++;
    return st;
}

/* One name table over the tensors of every file; a name in two files is an error. */
static setok_status index_tensors(setok_weights *w, setok_error *err)
{
    size_t total = 0;
    for (size_t f = 0; f < w->file_count; f++)
        total += setok_safetensors_count(w->files[f]);
    w->tensors = malloc((total ? total : 1) * sizeof *w->tensors);
    if (!w->tensors || !setok_io_names_init(&w->index, total))
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory indexing %zu tensors",
                          w->path, total);
    for (size_t f = 0; f < w->file_count; f++) {
        for (size_t i = 0; i < setok_safetensors_count(w->files[f]); i++) {
            const setok_st_tensor *t = setok_safetensors_at(w->files[f], i);
            size_t prev;
            if (!setok_io_names_add(&w->index, t->name, w->count, &prev)) {
                char nb[NAME_MAX_SHOWN];
                return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' is in both %s and %s",
                                  w->path, setok_io_printable(nb, sizeof nb, t->name),
                                  w->tensors[prev]->file, t->file);
            }
            w->tensors[w->count++] = t;
        }
    }
    return SETOK_OK;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard name must stay inside the folder: a plain file name. */
static bool plain_file_name(const char *name)
{
    return name[0] && !strchr(name, '/') && !strchr(name, '\\') && !strstr(name, "..") &&
           strcmp(name, ".") != 0;
}

static setok_status open_index(setok_weights *w, const char *index_path, const char *dir,
                               setok_error *err)
{
    setok_config *cfg;
    setok_status status = setok_config_load(&cfg, index_path, err);
    if (status != SETOK_OK)
        return status;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(setok_config_root(cfg), "weight_map");
    char nb[NAME_MAX_SHOWN], sb[NAME_MAX_SHOWN];
    if (!map)
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: missing required key 'weight_map'",
                            index_path);
    else if (!cJSON_IsObject(map))
        status = setok_fail(err, SETOK_ERR_INPUT,
                            "%s: key 'weight_map' must be an object (tensor name -> shard file), "
                            "got %s", index_path, setok_io_json_type(map));
    else if (!map->child)
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: weight_map names no tensors", index_path);
    if (status != SETOK_OK) {
        setok_config_free(cfg);
        return status;
    }

    /* check the entries and collect the distinct shard names */
    size_t entries = (size_t)cJSON_GetArraySize(map), shard_count = 0;
    setok_io_names tensors_seen, shards_seen;
    const char **shards = malloc(entries * sizeof *shards);
    bool ok1 = setok_io_names_init(&tensors_seen, entries);
    bool ok2 = setok_io_names_init(&shards_seen, entries);
    if (!shards || !ok1 || !ok2)
        status = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", index_path);
    for (const cJSON *e = map->child; e && status == SETOK_OK; e = e->next) {
        const char *name = setok_io_printable(nb, sizeof nb, e->string);
        if (!e->string[0])
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: weight_map has an empty tensor name",
                                index_path);
        else if (!setok_io_names_add(&tensors_seen, e->string, 0, NULL))
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: weight_map names tensor '%s' twice",
                                index_path, name);
        else if (!cJSON_IsString(e))
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: weight_map: tensor '%s' must map to a shard file name, got %s",
                                index_path, name, setok_io_json_type(e));
        else if (!plain_file_name(e->valuestring))
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: weight_map: tensor '%s' names shard '%s', which is not a "
                                "plain file name in the folder (no '/', '\\' or '..')",
                                index_path, name,
                                setok_io_printable(sb, sizeof sb, e->valuestring));
        else if (setok_io_names_find(&shards_seen, e->valuestring, NULL))
            continue;
        else if (shard_count == MAX_SHARDS)
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: weight_map names more than %d shard "
                                "files", index_path, MAX_SHARDS);
        else if (setok_io_names_add(&shards_seen, e->valuestring, shard_count, NULL))
            shards[shard_count++] = e->valuestring;
    }

    /* open each shard once, in name order (model-00001-of-00003 first) */
    if (status == SETOK_OK)
        qsort(shards, shard_count, sizeof *shards, compare_strings);
    for (size_t s = 0; s < shard_count && status == SETOK_OK; s++) {
        char *shard_path = join_path(dir, shards[s]);
        if (!shard_path) {
            status = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", index_path);
            break;
        }
        status = add_file(w, shard_path, err);
        if (status != SETOK_OK)
            setok_error_prefix(err, "%s: shard '%s' named in weight_map",
                               index_path, setok_io_printable(sb, sizeof sb, shards[s]));
        free(shard_path);
    }
    if (status == SETOK_OK)
        status = index_tensors(w, err);

    /* every tensor the map names must be in the shard it names; after the
     * sort, shard s is files[s] */
    if (ok2)
        setok_io_names_free(&shards_seen);
    ok2 = status == SETOK_OK && setok_io_names_init(&shards_seen, shard_count);
    if (status == SETOK_OK && !ok2)
        status = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", index_path);
    for (size_t s = 0; s < shard_count && status == SETOK_OK; s++)
        setok_io_names_add(&shards_seen, shards[s], s, NULL);
    for (const cJSON *e = map->child; e && status == SETOK_OK; e = e->next) {
        size_t i, s = 0;
        const char *name = setok_io_printable(nb, sizeof nb, e->string);
        const char *shard = setok_io_printable(sb, sizeof sb, e->valuestring);
        setok_io_names_find(&shards_seen, e->valuestring, &s);
        if (!setok_io_names_find(&w->index, e->string, &i))
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: weight_map puts tensor '%s' in '%s', but no shard has it",
                                index_path, name, shard);
        else if (w->tensors[i]->file != setok_safetensors_path(w->files[s]))
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: weight_map puts tensor '%s' in '%s', but it is in %s",
                                index_path, name, shard, w->tensors[i]->file);
    }
    if (ok1)
        setok_io_names_free(&tensors_seen);
    if (ok2)
        setok_io_names_free(&shards_seen);
    free(shards);
    setok_config_free(cfg);
    return status;
}

setok_status setok_weights_open(setok_weights **out, const char *path, setok_error *err)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s", path, strerror(errno));
    setok_weights *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    }

    setok_status status;
    if (!S_ISDIR(sb.st_mode)) {
        if (ends_with(path, ".index.json")) {
            /* the shards live next to the index */
            char *dir = strdup(path);
            char *slash = dir ? strrchr(dir, '/') : NULL;
            if (slash)
                slash[slash == dir ? 1 : 0] = '\0';
            status = dir ? open_index(w, path, slash ? dir : ".", err)
                         : setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
            free(dir);
        } else {
            status = add_file(w, path, err);
            if (status == SETOK_OK)
                status = index_tensors(w, err);
        }
    } else {
        char *found = NULL;
        for (size_t i = 0; i < WEIGHT_FILE_NAME_COUNT && !found; i++) {
            char *candidate = join_path(path, weight_file_names[i]);
            if (candidate && is_regular_file(candidate))
                found = candidate;
            else
                free(candidate);
        }
        if (!found) {
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: no weights found (looked for model.safetensors, "
                                "model.safetensors.index.json, diffusion_pytorch_model.safetensors,"
                                " diffusion_pytorch_model.safetensors.index.json and "
                                "adapter_model.safetensors)", path);
        } else if (ends_with(found, ".index.json")) {
            status = open_index(w, found, path, err);
        } else {
            status = add_file(w, found, err);
            if (status == SETOK_OK)
                status = index_tensors(w, err);
        }
        free(found);
    }
    if (status != SETOK_OK) {
        setok_weights_close(w);
        return status;
    }
    *out = w;
    return SETOK_OK;
}

void setok_weights_close(setok_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->file_count; i++)
        setok_safetensors_close(w->files[i]);
    free(w->files);
    free(w->tensors);
    setok_io_names_free(&w->index);
    free(w->path);
    free(w);
}

const char *setok_weights_path(const setok_weights *w)
{
    return w->path;
}

size_t setok_weights_count(const setok_weights *w)
{
    return w->count;
}

const setok_st_tensor *setok_weights_at(const setok_weights *w, size_t i)
{
    return i < w->count ? w->tensors[i] : NULL;
}

size_t setok_weights_file_count(const setok_weights *w)
{
    return w->file_count;
}

const setok_safetensors *setok_weights_file(const setok_weights *w, size_t i)
{
    return i < w->file_count ? w->files[i] : NULL;
}

const setok_st_tensor *setok_weights_find(const setok_weights *w, const char *name)
{
    size_t i;
    return setok_io_names_find(&w->index, name, &i) ? w->tensors[i] : NULL;
}

const setok_st_tensor *setok_weights_find_any(const setok_weights *w, const char *const *names,
                                              size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const setok_st_tensor *t = names[i] ? setok_weights_find(w, names[i]) : NULL;
        if (t)
            return t;
    }
    return NULL;
}

setok_status setok_weights_require(const setok_weights *w, const char *const *names, size_t count,
                                   int ndim, const int64_t *shape, const setok_st_tensor **out,
                                   setok_error *err)
{
    if (out)
        *out = NULL;
    if (!names || count == 0 || !names[0])
        return setok_fail(err, SETOK_ERR_INPUT, "%s: setok_weights_require: no tensor name given",
                          w->path);
    const setok_st_tensor *t = setok_weights_find_any(w, names, count);
    if (!t) {
        char list[SETOK_ERROR_MAX / 2], nb[NAME_MAX_SHOWN];
        size_t n = 0;
        for (size_t i = 1; i < count && n < sizeof list; i++)
            if (names[i])
                n += (size_t)snprintf(list + n, sizeof list - n, "%s'%s'", n ? ", " : "",
                                      names[i]);
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s'%s%s%s not found", w->path,
                          setok_io_printable(nb, sizeof nb, names[0]), n ? " (or " : "",
                          n ? list : "", n ? ")" : "");
    }
    bool match = t->ndim == ndim;
    for (int i = 0; match && i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i])
            match = false;
    if (!match) {
        char have[160], want[160], nb[NAME_MAX_SHOWN];
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' has shape %s, expected %s",
                          t->file, setok_io_printable(nb, sizeof nb, t->name),
                          setok_io_format_shape(have, sizeof have, t->shape, t->ndim),
                          setok_io_format_shape(want, sizeof want, shape, ndim));
    }
    if (out)
        *out = t;
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// loading into a backend

/* Element i of integer file data (little-endian, as the format stores it). */
static int64_t read_int(const unsigned char *p, setok_st_dtype dtype, uint64_t i, bool *too_big)
{
    size_t size = setok_st_dtype_size(dtype);
    uint64_t u = 0;
    for (size_t b = 0; b < size; b++)
        u |= (uint64_t)p[size * i + b] << (8 * b);
    switch (dtype) {
    case SETOK_ST_I8: return (int8_t)u;
    case SETOK_ST_I16: return (int16_t)u;
    case SETOK_ST_I32: return (int32_t)(uint32_t)u;
    case SETOK_ST_I64: return (int64_t)u;
    case SETOK_ST_U64:
        *too_big = u > INT64_MAX;
        return (int64_t)(u & INT64_MAX);
    default: return (int64_t)u; /* BOOL, U8, U16, U32 */
    }
}

static bool is_float_file_dtype(setok_st_dtype d)
{
    return d == SETOK_ST_F16 || d == SETOK_ST_BF16 || d == SETOK_ST_F32 || d == SETOK_ST_F64;
}

static bool is_int_file_dtype(setok_st_dtype d)
{
    return d == SETOK_ST_U8 || d == SETOK_ST_I8 || d == SETOK_ST_U16 || d == SETOK_ST_I16 ||
           d == SETOK_ST_U32 || d == SETOK_ST_I32 || d == SETOK_ST_U64 || d == SETOK_ST_I64 ||
           d == SETOK_ST_BOOL;
}

/* Converts numel elements of file data into dst (host, aligned) of dtype. */
static setok_status convert(void *dst, setok_dtype dtype, const setok_st_tensor *t, uint64_t numel,
                            setok_error *err)
{
    const unsigned char *src = t->data;
    if (dtype == SETOK_I32) {
        int32_t *out = dst;
        for (uint64_t i = 0; i < numel; i++) {
            bool too_big = false;
            int64_t v = read_int(src, t->dtype, i, &too_big);
            if (too_big || v < INT32_MIN || v > INT32_MAX) {
                char nb[NAME_MAX_SHOWN];
                return setok_fail(err, SETOK_ERR_INPUT,
                                  "%s: tensor '%s': element %" PRIu64 " does not fit in i32",
                                  t->file, setok_io_printable(nb, sizeof nb, t->name), i);
            }
            out[i] = (int32_t)v;
        }
        return SETOK_OK;
    }
    for (uint64_t i = 0; i < numel; i++) {
        /* f16 and bf16 values are exact in f32, so converting through f32
         * rounds once; f64 sources round to f32 first */
        float v = (float)setok_st_tensor_float_at(t, i);
        setok_store_f32(dst, dtype, (int64_t)i, v);
    }
    return SETOK_OK;
}

setok_status setok_weights_load(setok_tensor *out, const setok_st_tensor *t,
                                setok_backend *backend, setok_dtype dtype, setok_error *err)
{
    char nb[NAME_MAX_SHOWN];
    const char *name = setok_io_printable(nb, sizeof nb, t->name);
    memset(out, 0, sizeof *out);
    if ((unsigned)dtype >= SETOK_DTYPE_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s': invalid target dtype %d",
                          t->file, name, (int)dtype);
    bool float_target = setok_dtype_is_float(dtype);
    if ((float_target && !is_float_file_dtype(t->dtype)) ||
        (!float_target && !is_int_file_dtype(t->dtype)))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' is %s, which cannot be loaded "
                          "as %s", t->file, name, setok_st_dtype_name(t->dtype),
                          setok_dtype_name(dtype));
    if (t->ndim > SETOK_MAX_DIMS)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has %d dimensions, the engine supports at most %d",
                          t->file, name, t->ndim, SETOK_MAX_DIMS);

    setok_tensor dst;
    setok_status status = setok_tensor_alloc(&dst, backend, dtype, t->ndim, t->shape, err);
    if (status != SETOK_OK) {
        setok_error_prefix(err, "%s: tensor '%s'", t->file, name);
        return status;
    }
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++)
        numel *= (uint64_t)t->shape[i];

    if (numel > 0) {
        if (setok_st_dtype_to_engine(t->dtype) == dtype) {
            /* same dtype: straight from the mapping */
            status = setok_tensor_upload(&dst, t->data, err);
        } else if (setok_backend_is_host(backend)) {
            status = convert(dst.data, dtype, t, numel, err);
        } else {
            void *staging = malloc(setok_tensor_nbytes(&dst));
            status = staging ? convert(staging, dtype, t, numel, err)
                             : setok_fail(err, SETOK_ERR_NOMEM,
                                          "%s: tensor '%s': out of memory for %zu staging bytes",
                                          t->file, name, setok_tensor_nbytes(&dst));
            if (status == SETOK_OK)
                status = setok_tensor_upload(&dst, staging, err);
            free(staging);
        }
    }
    if (status != SETOK_OK) {
        setok_tensor_free(&dst);
        return status;
    }
    *out = dst;
    return SETOK_OK;
}
