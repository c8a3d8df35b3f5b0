/* safetensors.c — open (mmap + validate) and write safetensors files.
 *
 * A model file is untrusted input: every rule of the format is checked before
 * a tensor is handed out, and each failure names the file, the tensor and the
 * rule. The header is copied out of the mapping (NUL-terminated) before cJSON
 * sees it, and scanned first for what cJSON does not check (json.h: control bytes
 * between values, UTF-8, raw control characters and \u0000 in strings) and for which
 * numbers were written as integers (cJSON keeps only a double, so "2.0" would pass
 * for 2); only spaces may pad it. */
#include "setok/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "io-private.h"
#include "json.h"
#include "setok/file.h"

#define NAME_MAX_SHOWN 200
#define MAX_EXACT_INT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact */

// ----------------------------------------------------------------------------
// dtypes

static const struct {
    const char *name;
    size_t size;
    setok_dtype engine;
} st_dtypes[] = {
    [SETOK_ST_BOOL] = {"BOOL", 1, SETOK_DTYPE_COUNT},
    [SETOK_ST_U8] = {"U8", 1, SETOK_DTYPE_COUNT},
    [SETOK_ST_I8] = {"I8", 1, SETOK_DTYPE_COUNT},
    [SETOK_ST_U16] = {"U16", 2, SETOK_DTYPE_COUNT},
    [SETOK_ST_I16] = {"I16", 2, SETOK_DTYPE_COUNT},
    [SETOK_ST_U32] = {"U32", 4, SETOK_DTYPE_COUNT},
    [SETOK_ST_I32] = {"I32", 4, SETOK_I32},
    [SETOK_ST_U64] = {"U64", 8, SETOK_DTYPE_COUNT},
    [SETOK_ST_I64] = {"I64", 8, SETOK_DTYPE_COUNT},
    [SETOK_ST_F8_E4M3] = {"F8_E4M3", 1, SETOK_DTYPE_COUNT},
    [SETOK_ST_F8_E5M2] = {"F8_E5M2", 1, SETOK_DTYPE_COUNT},
    [SETOK_ST_F16] = {"F16", 2, SETOK_F16},
    [SETOK_ST_BF16] = {"BF16", 2, SETOK_BF16},
    [SETOK_ST_F32] = {"F32", 4, SETOK_F32},
    [SETOK_ST_F64] = {"F64", 8, SETOK_DTYPE_COUNT},
};
_Static_assert(sizeof st_dtypes / sizeof st_dtypes[0] == SETOK_ST_DTYPE_COUNT,
               "st_dtypes must name every setok_st_dtype");

const char *setok_st_dtype_name(setok_st_dtype dtype)
{
    return (unsigned)dtype < SETOK_ST_DTYPE_COUNT ? st_dtypes[dtype].name : "?";
}

size_t setok_st_dtype_size(setok_st_dtype dtype)
{
    return (unsigned)dtype < SETOK_ST_DTYPE_COUNT ? st_dtypes[dtype].size : 0;
}

setok_dtype setok_st_dtype_to_engine(setok_st_dtype dtype)
{
    return (unsigned)dtype < SETOK_ST_DTYPE_COUNT ? st_dtypes[dtype].engine : SETOK_DTYPE_COUNT;
}

static bool st_dtype_from_name(const char *name, setok_st_dtype *out)
{
    for (int i = 0; i < SETOK_ST_DTYPE_COUNT; i++) {
        if (strcmp(name, st_dtypes[i].name) == 0) {
            *out = (setok_st_dtype)i;
            return true;
        }
    }
    return false;
}

// ----------------------------------------------------------------------------
// helpers

/* Byte count of shape[0..ndim) elements of itemsize; false on uint64 overflow.
 * *numel gets the element count (it may be representable when bytes is not). */
static bool shape_bytes(const int64_t *shape, int ndim, size_t itemsize, uint64_t *numel,
                        uint64_t *bytes)
{
    uint64_t n = 1;
    bool overflow = false;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > UINT64_MAX / d)
            overflow = true;
        else
            n *= d;
    }
    /* a zero extent makes the product 0 whatever the other extents are */
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0)
            n = 0, overflow = false;
    *numel = n;
    if (overflow || (itemsize && n > UINT64_MAX / itemsize))
        return false;
    *bytes = n * itemsize;
    return true;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = setok_utf8_sequence(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

// ----------------------------------------------------------------------------
// reading

struct setok_safetensors {
    char *path;
    void *map;
    size_t map_size;
    cJSON *root;                /* names and metadata point into it */
    setok_st_tensor *tensors;   /* sorted by data offset */
    size_t count;
    setok_io_names index;
    const char **meta_keys;
    const char **meta_values;
    size_t meta_count;
};

/* What the text scan learned: for each JSON number, in document order,
 * whether it was written as an integer (no fraction, no exponent). */
typedef struct number_flags {
    unsigned char *is_int;
    size_t count, cap;
} number_flags;

static bool push_flag(number_flags *f, bool is_int)
{
    if (f->count == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 256;
        unsigned char *p = realloc(f->is_int, cap);
        if (!p)
            return false;
        f->is_int = p;
        f->cap = cap;
    }
    f->is_int[f->count++] = is_int;
    return true;
}

/* Checks the raw header text as strict JSON (json.h: no control bytes between values, valid
 * UTF-8 and no raw control characters or \u0000 escapes inside strings) and records which
 * numbers are integers. */
static setok_status scan_header(const char *path, const char *text, size_t n, number_flags *flags,
                                setok_error *err)
{
    size_t at = 0, values = 0;
    char what[160];
    if (setok_json_find_issue(text, n, &at, what, sizeof what, &values))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: header is not valid JSON at header offset "
                          "%zu: %s", path, at, what);
    /* cJSON's tree costs about 64 bytes a value: a 100 MB header of tiny values would take
     * gigabytes, where real headers hold a few values per tensor */
    if (values > SETOK_JSON_CONFIG_MAX_VALUES)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: header holds up to %zu JSON values, more "
                          "than the %zu allowed", path, values, SETOK_JSON_CONFIG_MAX_VALUES);
    const unsigned char *s = (const unsigned char *)text;
    bool in_string = false;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (in_string) {
            if (c == '"')
                in_string = false;
            else if (c == '\\')
                i++; /* the escaped character cannot end the string */
            i++;
        } else if (c == '"') {
            in_string = true;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            bool is_int = true;
            while (i < n && s[i] && strchr("0123456789+-.eE", s[i])) {
                if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
                    is_int = false;
                i++;
            }
            if (!push_flag(flags, is_int))
                return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory scanning the header",
                                  path);
        } else {
            i++;
        }
    }
    return SETOK_OK;
}

/* Stores each number's integer flag in its (otherwise unused) valueint, in
 * document order, which is cJSON's depth-first order. */
static bool stamp_numbers(cJSON *node, const number_flags *flags, size_t *next)
{
    for (; node; node = node->next) {
        if (cJSON_IsNumber(node)) {
            if (*next >= flags->count)
                return false;
            node->valueint = flags->is_int[(*next)++];
        } else if (node->child && !stamp_numbers(node->child, flags, next)) {
            return false;
        }
    }
    return true;
}

static setok_status map_file(setok_safetensors *st, setok_error *err)
{
    const char *path = st->path;
    int fd;
    uint64_t size;
    setok_status status = setok_io_open_regular(path, "a safetensors file", &fd, &size, err);
    if (status != SETOK_OK)
        return status;
    if (size == 0)
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: file is empty (0 bytes)", path);
    else if (size < 8)
        status = setok_fail(err, SETOK_ERR_INPUT,
                            "%s: file is %llu bytes, shorter than the 8-byte header length",
                            path, (unsigned long long)size);
    else if (size > SIZE_MAX)
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: file too large to map", path);
    if (status == SETOK_OK) {
        void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            status = setok_fail(err, SETOK_ERR_RUNTIME, "%s: cannot map %llu bytes: %s", path,
                                (unsigned long long)size, strerror(errno));
        } else {
            st->map = map;
            st->map_size = (size_t)size;
        }
    }
    close(fd);
    return status;
}

/* A JSON integer in [0, 2^53], as written in the file (see scan_header). */
static bool json_count(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item) || item->valueint != 1)
        return false;
    double v = item->valuedouble;
    if (!(v >= 0.0 && v <= MAX_EXACT_INT))
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Why json_count refused item, for messages: "a string", "-3", "1.5". */
static const char *describe_bad_count(char *buf, size_t size, const cJSON *item)
{
    if (!cJSON_IsNumber(item))
        snprintf(buf, size, "%s", setok_io_json_type(item));
    else if (item->valueint != 1)
        snprintf(buf, size, "%.17g written with a fraction or exponent", item->valuedouble);
    else if (item->valuedouble < 0.0)
        snprintf(buf, size, "%.17g, which is negative", item->valuedouble);
    else
        snprintf(buf, size, "%.17g, beyond 2^53", item->valuedouble);
    return buf;
}

/* One header entry: {"dtype": ..., "shape": [...], "data_offsets": [b, e]}. */
static setok_status parse_entry(const setok_safetensors *st, const cJSON *item,
                                uint64_t data_size, setok_st_tensor *t, uint64_t offsets[2],
                                setok_error *err)
{
    const char *path = st->path;
    char nb[NAME_MAX_SHOWN], why[96], sb[160];
    const char *name = setok_io_printable(nb, sizeof nb, item->string);
    if (!cJSON_IsObject(item))
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: tensor '%s' must be an object with dtype, shape and "
                          "data_offsets, got %s", path, name, setok_io_json_type(item));

    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    const cJSON *field[3] = {NULL, NULL, NULL};
    for (const cJSON *f = item->child; f; f = f->next) {
        for (int k = 0; k < 3; k++) {
            if (f->string && strcmp(f->string, keys[k]) == 0) {
                if (field[k])
                    return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s': key '%s' appears "
                                      "twice", path, name, keys[k]);
                field[k] = f;
            }
        }
    }
    for (int k = 0; k < 3; k++)
        if (!field[k])
            return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s': missing '%s'", path, name,
                              keys[k]);

    const cJSON *dtype = field[0], *shape = field[1], *offs = field[2];
    if (!cJSON_IsString(dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s': dtype must be a string, got %s",
                          path, name, setok_io_json_type(dtype));
    if (!st_dtype_from_name(dtype->valuestring, &t->dtype)) {
        char db[64];
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s': unknown dtype '%s'", path,
                          name, setok_io_printable(db, sizeof db, dtype->valuestring));
    }

    if (!cJSON_IsArray(shape))
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: tensor '%s': shape must be an array of integers, got %s", path,
                          name, setok_io_json_type(shape));
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > SETOK_ST_MAX_DIMS)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: tensor '%s': shape has %d dimensions, at most %d are supported",
                          path, name, ndim, SETOK_ST_MAX_DIMS);
    t->ndim = ndim;
    int d = 0;
    for (const cJSON *e = shape->child; e; e = e->next, d++) {
        uint64_t v;
        if (!json_count(e, &v))
            return setok_fail(err, SETOK_ERR_INPUT,
                              "%s: tensor '%s': shape[%d] must be a non-negative integer, got %s",
                              path, name, d, describe_bad_count(why, sizeof why, e));
        t->shape[d] = (int64_t)v;
    }
    for (; d < SETOK_ST_MAX_DIMS; d++)
        t->shape[d] = 1;
    uint64_t numel;
    if (!shape_bytes(t->shape, ndim, st_dtypes[t->dtype].size, &numel, &t->nbytes))
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: tensor '%s': shape %s of %s needs more than 2^64 bytes", path,
                          name, setok_io_format_shape(sb, sizeof sb, t->shape, ndim),
                          st_dtypes[t->dtype].name);

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: tensor '%s': data_offsets must be an array of two integers "
                          "[begin, end], got %s%s%d%s", path, name, setok_io_json_type(offs),
                          cJSON_IsArray(offs) ? " of " : "",
                          cJSON_IsArray(offs) ? cJSON_GetArraySize(offs) : 0,
                          cJSON_IsArray(offs) ? " entries" : "");
    const cJSON *e = offs->child;
    for (int k = 0; k < 2; k++, e = e->next)
        if (!json_count(e, &offsets[k]))
            return setok_fail(err, SETOK_ERR_INPUT,
                              "%s: tensor '%s': data_offsets[%d] must be a non-negative integer, "
                              "got %s", path, name, k, describe_bad_count(why, sizeof why, e));
    uint64_t begin = offsets[0], end = offsets[1];
    if (begin > end)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before "
                          "they begin", path, name, begin, end);
    if (end > data_size)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the "
                          "end of the data buffer (%" PRIu64 " bytes)", path, name, begin, end,
                          data_size);
    if (end - begin != t->nbytes)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                          " bytes but shape %s of %s needs %" PRIu64, path, name, begin, end,
                          end - begin, setok_io_format_shape(sb, sizeof sb, t->shape, ndim),
                          st_dtypes[t->dtype].name, t->nbytes);
    return SETOK_OK;
}

static setok_status parse_metadata(setok_safetensors *st, const cJSON *meta, setok_error *err)
{
    const char *path = st->path;
    if (!cJSON_IsObject(meta))
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: __metadata__ must be an object of strings, got %s", path,
                          setok_io_json_type(meta));
    size_t n = (size_t)cJSON_GetArraySize(meta);
    setok_io_names seen;
    st->meta_keys = calloc(n ? n : 1, sizeof *st->meta_keys);
    st->meta_values = calloc(n ? n : 1, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values || !setok_io_names_init(&seen, n))
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory reading __metadata__", path);
    setok_status status = SETOK_OK;
    char kb[NAME_MAX_SHOWN];
    for (const cJSON *m = meta->child; m && status == SETOK_OK; m = m->next) {
        const char *key = setok_io_printable(kb, sizeof kb, m->string);
        if (!setok_io_names_add(&seen, m->string, st->meta_count, NULL))
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: __metadata__ key '%s' appears twice",
                                path, key);
        else if (!cJSON_IsString(m))
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: __metadata__ key '%s' must have a string value, got %s",
                                path, key, setok_io_json_type(m));
        else {
            st->meta_keys[st->meta_count] = m->string;
            st->meta_values[st->meta_count++] = m->valuestring;
        }
    }
    setok_io_names_free(&seen);
    return status;
}

/* Sort by data offset (then end, then name, so equal offsets of empty
 * tensors order the same way every time). */
typedef struct sort_item {
    uint64_t begin, end;
    size_t index;
    const char *name;
} sort_item;

static int compare_sort_items(const void *pa, const void *pb)
{
    const sort_item *a = pa, *b = pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name);
}

static setok_status parse_header(setok_safetensors *st, const char *text, size_t n,
                                 uint64_t data_size, const unsigned char *data,
                                 setok_error *err)
{
    const char *path = st->path;
    if (n == 0)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: header is empty (header length 0)", path);
    if (text[0] != '{')
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: header must begin with '{' (a JSON object), found byte 0x%02X",
                          path, (unsigned char)text[0]);

    number_flags flags = {NULL, 0, 0};
    setok_status status = scan_header(path, text, n, &flags, err);
    if (status != SETOK_OK) {
        free(flags.is_int);
        return status;
    }
    const char *end = NULL;
    st->root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!st->root) {
        free(flags.is_int);
        size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: header is not valid JSON (error at header offset %zu)", path, at);
    }
    /* the format pads the header with spaces (0x20) only */
    for (size_t at = (size_t)(end - text); at < n; at++) {
        if (text[at] != ' ') {
            free(flags.is_int);
            return setok_fail(err, SETOK_ERR_INPUT,
                              "%s: header has byte 0x%02X after the JSON object at header offset "
                              "%zu (only spaces may pad it)", path, (unsigned char)text[at], at);
        }
    }
    /* only whitespace follows the object, so the scan saw exactly its numbers */
    size_t next = 0;
    bool stamped = stamp_numbers(st->root, &flags, &next) && next == flags.count;
    free(flags.is_int);
    if (!stamped)
        return setok_fail(err, SETOK_ERR_RUNTIME, "%s: internal error: header number count "
                          "differs between scan and parse", path);
    if (!cJSON_IsObject(st->root))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: header must be a JSON object, got %s", path,
                          setok_io_json_type(st->root));

    size_t items = (size_t)cJSON_GetArraySize(st->root);
    st->tensors = calloc(items ? items : 1, sizeof *st->tensors);
    sort_item *order = calloc(items ? items : 1, sizeof *order);
    setok_io_names seen;
    bool seen_ok = setok_io_names_init(&seen, items);
    if (!st->tensors || !order || !seen_ok) {
        free(order);
        if (seen_ok)
            setok_io_names_free(&seen);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory reading %zu header entries",
                          path, items);
    }

    char nb[NAME_MAX_SHOWN], nb2[NAME_MAX_SHOWN];
    size_t count = 0;
    for (const cJSON *item = st->root->child; item && status == SETOK_OK; item = item->next) {
        const char *name = item->string;
        if (!name || !name[0]) {
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: a tensor has an empty name", path);
        } else if (!setok_io_names_add(&seen, name, 0, NULL)) {
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: %s '%s' appears twice in the header",
                                path, strcmp(name, "__metadata__") ? "tensor" : "key",
                                setok_io_printable(nb, sizeof nb, name));
        } else if (strcmp(name, "__metadata__") == 0) {
            status = parse_metadata(st, item, err);
        } else {
            setok_st_tensor *t = &st->tensors[count];
            uint64_t offsets[2];
            status = parse_entry(st, item, data_size, t, offsets, err);
            if (status == SETOK_OK) {
                t->name = name;
                t->file = st->path;
                t->data = data + offsets[0];
                order[count] = (sort_item){offsets[0], offsets[1], count, name};
                count++;
            }
        }
    }
    setok_io_names_free(&seen);

    /* sorted by begin, the entries must tile [0, data_size) exactly */
    if (status == SETOK_OK)
        qsort(order, count, sizeof *order, compare_sort_items);
    uint64_t expect = 0;
    for (size_t i = 0; i < count && status == SETOK_OK; i++) {
        const sort_item *it = &order[i];
        if (it->begin > expect)
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] leave a "
                                "hole of %" PRIu64 " bytes after %s%s%s (tensors must tile the "
                                "data buffer)", path, setok_io_printable(nb, sizeof nb, it->name),
                                it->begin, it->end, it->begin - expect,
                                i ? "tensor '" : "the start of the data buffer",
                                i ? setok_io_printable(nb2, sizeof nb2, order[i - 1].name) : "",
                                i ? "'" : "");
        else if (it->begin < expect)
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] overlap "
                                "tensor '%s' [%" PRIu64 ", %" PRIu64 "]", path,
                                setok_io_printable(nb, sizeof nb, it->name), it->begin, it->end,
                                setok_io_printable(nb2, sizeof nb2, order[i - 1].name),
                                order[i - 1].begin, order[i - 1].end);
        expect = it->end;
    }
    if (status == SETOK_OK && expect != data_size)
        status = setok_fail(err, SETOK_ERR_INPUT,
                            "%s: the tensors end at data offset %" PRIu64 " but the data buffer "
                            "has %" PRIu64 " bytes (%" PRIu64 " bytes belong to no tensor)", path,
                            expect, data_size, data_size - expect);

    /* reorder by offset and index the names */
    if (status == SETOK_OK) {
        setok_st_tensor *sorted = malloc((count ? count : 1) * sizeof *sorted);
        if (!sorted || !setok_io_names_init(&st->index, count)) {
            free(sorted);
            status = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory indexing %zu tensors",
                                path, count);
        } else {
            for (size_t i = 0; i < count; i++) {
                sorted[i] = st->tensors[order[i].index];
                setok_io_names_add(&st->index, sorted[i].name, i, NULL);
            }
            free(st->tensors);
            st->tensors = sorted;
            st->count = count;
        }
    }
    free(order);
    return status;
}

setok_status setok_safetensors_open(setok_safetensors **out, const char *path, setok_error *err)
{
    *out = NULL;
    setok_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    }
    setok_status status = map_file(st, err);
    if (status != SETOK_OK) {
        setok_safetensors_close(st);
        return status;
    }

    const unsigned char *bytes = st->map;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | bytes[i];
    uint64_t file_size = st->map_size;
    if (header_len > SETOK_ST_MAX_HEADER)
        status = setok_fail(err, SETOK_ERR_INPUT,
                            "%s: header length %" PRIu64 " exceeds the limit of %u bytes (100 MB)",
                            path, header_len, SETOK_ST_MAX_HEADER);
    else if (header_len > file_size - 8)
        status = setok_fail(err, SETOK_ERR_INPUT,
                            "%s: header length %" PRIu64 " runs past the end of the file (%" PRIu64
                            " bytes leave at most %" PRIu64 " for the header)", path, header_len,
                            file_size, file_size - 8);
    if (status == SETOK_OK) {
        /* parse a NUL-terminated copy: cJSON must not read the mapping's end */
        size_t n = (size_t)header_len;
        char *text = malloc(n + 1);
        if (!text) {
            status = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory for a %zu-byte header",
                                path, n);
        } else {
            memcpy(text, bytes + 8, n);
            text[n] = '\0';
            status = parse_header(st, text, n, file_size - 8 - header_len, bytes + 8 + n, err);
            free(text);
        }
    }
    if (status != SETOK_OK) {
        setok_safetensors_close(st);
        return status;
    }
    *out = st;
    return SETOK_OK;
}

void setok_safetensors_close(setok_safetensors *st)
{
    if (!st)
        return;
    if (st->map)
        munmap(st->map, st->map_size);
    cJSON_Delete(st->root);
    free(st->tensors);
    setok_io_names_free(&st->index);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->path);
    free(st);
}

const char *setok_safetensors_path(const setok_safetensors *st)
{
    return st->path;
}

size_t setok_safetensors_count(const setok_safetensors *st)
{
    return st->count;
}

const setok_st_tensor *setok_safetensors_at(const setok_safetensors *st, size_t i)
{
    return i < st->count ? &st->tensors[i] : NULL;
}

const setok_st_tensor *setok_safetensors_find(const setok_safetensors *st, const char *name)
{
    size_t i;
    return setok_io_names_find(&st->index, name, &i) ? &st->tensors[i] : NULL;
}

const char *setok_safetensors_metadata(const setok_safetensors *st, const char *key)
{
    for (size_t i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

size_t setok_safetensors_metadata_count(const setok_safetensors *st)
{
    return st->meta_count;
}

void setok_safetensors_metadata_at(const setok_safetensors *st, size_t i, const char **key,
                                   const char **value)
{
    *key = i < st->meta_count ? st->meta_keys[i] : NULL;
    *value = i < st->meta_count ? st->meta_values[i] : NULL;
}

setok_status setok_st_tensor_view(setok_tensor *out, const setok_st_tensor *t, setok_error *err)
{
    char nb[NAME_MAX_SHOWN];
    setok_dtype dtype = setok_st_dtype_to_engine(t->dtype);
    if (dtype == SETOK_DTYPE_COUNT)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "%s: tensor '%s' is %s, which the engine has no dtype for (load it "
                          "with setok_weights_load)", t->file,
                          setok_io_printable(nb, sizeof nb, t->name),
                          setok_st_dtype_name(t->dtype));
    if (t->ndim > SETOK_MAX_DIMS)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has %d dimensions, the engine supports at most %d",
                          t->file, setok_io_printable(nb, sizeof nb, t->name), t->ndim,
                          SETOK_MAX_DIMS);
    /* element loads through a misaligned pointer are undefined behaviour */
    if (t->nbytes > 0 && (uintptr_t)t->data % setok_st_dtype_size(t->dtype) != 0)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "%s: tensor '%s' is not %zu-byte aligned in the file (copy it with "
                          "setok_weights_load)", t->file,
                          setok_io_printable(nb, sizeof nb, t->name),
                          setok_st_dtype_size(t->dtype));
    *out = setok_tensor_make((void *)(uintptr_t)t->data, NULL, dtype, t->ndim, t->shape);
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// writing

static cJSON *json_uint(uint64_t v)
{
    /* raw digits: cJSON prints large doubles with an exponent */
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateRaw(buf);
}

/* The header JSON for entries; *nbytes gets each entry's size. */
static setok_status build_header(const char *path, const setok_st_entry *entries, size_t count,
                                 const char *const *metadata, uint64_t *nbytes, cJSON **out,
                                 setok_error *err)
{
    char nb[NAME_MAX_SHOWN], sb[160];
    cJSON *root = cJSON_CreateObject();
    setok_io_names seen;
    if (!root || !setok_io_names_init(&seen, count)) {
        cJSON_Delete(root);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    setok_status status = SETOK_OK;
    bool oom = false;
    if (metadata && metadata[0]) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; meta && status == SETOK_OK && metadata[i]; i += 2) {
            const char *key = metadata[i], *value = metadata[i + 1];
            if (!value)
                status = setok_fail(err, SETOK_ERR_INPUT, "%s: metadata key '%s' has no value",
                                    path, setok_io_printable(nb, sizeof nb, key));
            else if (!utf8_valid(key) || !utf8_valid(value))
                status = setok_fail(err, SETOK_ERR_INPUT,
                                    "%s: metadata key '%s': key and value must be UTF-8", path,
                                    setok_io_printable(nb, sizeof nb, key));
            else if (cJSON_GetObjectItemCaseSensitive(meta, key))
                status = setok_fail(err, SETOK_ERR_INPUT, "%s: metadata key '%s' given twice",
                                    path, setok_io_printable(nb, sizeof nb, key));
            else
                oom |= !cJSON_AddStringToObject(meta, key, value);
        }
        oom |= !meta;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < count && status == SETOK_OK && !oom; i++) {
        const setok_st_entry *e = &entries[i];
        const char *name = e->name ? setok_io_printable(nb, sizeof nb, e->name) : "(null)";
        uint64_t numel;
        if (!e->name || !e->name[0] || !utf8_valid(e->name)) {
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: entry %zu: tensor names must be non-empty UTF-8", path, i);
            break;
        }
        if (strcmp(e->name, "__metadata__") == 0 || !setok_io_names_add(&seen, e->name, i, NULL))
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' is %s", path, name,
                                strcmp(e->name, "__metadata__") ? "given twice"
                                                                : "a reserved name");
        else if ((unsigned)e->dtype >= SETOK_ST_DTYPE_COUNT)
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s': invalid dtype %d", path,
                                name, (int)e->dtype);
        else if (e->ndim < 0 || e->ndim > SETOK_ST_MAX_DIMS || (e->ndim > 0 && !e->shape))
            status = setok_fail(err, SETOK_ERR_INPUT,
                                "%s: tensor '%s': ndim %d is outside 0..%d", path, name, e->ndim,
                                SETOK_ST_MAX_DIMS);
        if (status != SETOK_OK)
            break;
        for (int d = 0; d < e->ndim && status == SETOK_OK; d++)
            if (e->shape[d] < 0 || (double)e->shape[d] > MAX_EXACT_INT)
                status = setok_fail(err, SETOK_ERR_INPUT,
                                    "%s: tensor '%s': shape[%d] = %" PRId64 " is outside [0, 2^53]",
                                    path, name, d, e->shape[d]);
        if (status != SETOK_OK)
            break;
        if (!shape_bytes(e->shape, e->ndim, setok_st_dtype_size(e->dtype), &numel, &nbytes[i]) ||
            nbytes[i] > (uint64_t)MAX_EXACT_INT - offset) {
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s': shape %s is too large",
                                path, name,
                                setok_io_format_shape(sb, sizeof sb, e->shape, e->ndim));
            break;
        }
        if (nbytes[i] > 0 && !e->data) {
            status = setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' has no data", path, name);
            break;
        }
        cJSON *item = cJSON_AddObjectToObject(root, e->name);
        cJSON *shape = item ? cJSON_AddArrayToObject(item, "shape") : NULL;
        cJSON *offs = cJSON_CreateArray();
        oom |= !item || !shape || !offs ||
               !cJSON_AddStringToObject(item, "dtype", setok_st_dtype_name(e->dtype));
        if (item && offs)
            cJSON_AddItemToObject(item, "data_offsets", offs);
        else
            cJSON_Delete(offs);
        for (int d = 0; d < e->ndim && !oom; d++)
            oom |= !cJSON_AddItemToArray(shape, json_uint((uint64_t)e->shape[d]));
        if (!oom)
            oom |= !cJSON_AddItemToArray(offs, json_uint(offset)) ||
                   !cJSON_AddItemToArray(offs, json_uint(offset + nbytes[i]));
        offset += nbytes[i];
    }
    setok_io_names_free(&seen);
    if (status == SETOK_OK && oom)
        status = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory building the header", path);
    if (status != SETOK_OK) {
        cJSON_Delete(root);
        return status;
    }
    *out = root;
    return SETOK_OK;
}

static bool write_all(FILE *f, const void *data, uint64_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        if (fwrite(p, 1, chunk, f) != chunk)
            return false;
        p += chunk;
        n -= chunk;
    }
    return true;
}

typedef struct st_write {
    const char *json;           /* the header */
    const setok_st_entry *entries;
    const uint64_t *nbytes;
    size_t count;
} st_write;

/* The setok_file_writer of setok_safetensors_write: length, header, data. */
static setok_status write_file(FILE *f, void *user, setok_error *err)
{
    const st_write *w = user;
    /* pad with spaces so that the data starts 8-byte aligned */
    size_t json_len = strlen(w->json);
    size_t header_len = (json_len + 7) / 8 * 8;
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; i++)
        len_bytes[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    static const char spaces[8] = "        ";
    bool ok = fwrite(len_bytes, 1, 8, f) == 8 && fwrite(w->json, 1, json_len, f) == json_len &&
              fwrite(spaces, 1, header_len - json_len, f) == header_len - json_len;
    for (size_t i = 0; i < w->count && ok; i++)
        ok = write_all(f, w->entries[i].data, w->nbytes[i]);
    (void)err;
    /* a short write leaves the stream's error flag, which setok_file_replace reports */
    return SETOK_OK;
}

setok_status setok_safetensors_write(const char *path, const setok_st_entry *entries,
                                     size_t count, const char *const *metadata,
                                     setok_error *err)
{
    uint64_t *nbytes = calloc(count ? count : 1, sizeof *nbytes);
    if (!nbytes)
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    cJSON *root = NULL;
    setok_status status = build_header(path, entries, count, metadata, nbytes, &root, err);
    if (status != SETOK_OK) {
        free(nbytes);
        return status;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) {
        free(nbytes);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory printing the header", path);
    }
    st_write w = {json, entries, nbytes, count};
    status = setok_file_replace(path, write_file, &w, err);
    free(json);
    free(nbytes);
    return status;
}

double setok_st_tensor_float_at(const setok_st_tensor *t, uint64_t i)
{
    const unsigned char *p = t->data;
    uint16_t h;
    float f;
    double d;
    switch (t->dtype) {
    case SETOK_ST_F16:
        memcpy(&h, p + 2 * i, 2);
        return setok_f16_to_f32(h);
    case SETOK_ST_BF16:
        memcpy(&h, p + 2 * i, 2);
        return setok_bf16_to_f32(h);
    case SETOK_ST_F32:
        memcpy(&f, p + 4 * i, 4);
        return f;
    case SETOK_ST_F64:
        memcpy(&d, p + 8 * i, 8);
        return d;
    default:
        return 0.0;
    }
}
