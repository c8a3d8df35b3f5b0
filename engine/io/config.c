/* config.c — checked access to JSON configuration files (config.json,
 * setokim.json, *.index.json) over cJSON.
 *
 * Keys are dotted paths into nested objects; a literal key that itself has
 * dots ("model.layers") is matched first. Errors name the file and the key:
 * "llm/config.json: key 'hidden_size' must be an integer, got string". */
#include "setok/config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "io-private.h"
#include "json.h"

#define CONFIG_MAX_BYTES (64u * 1000u * 1000u)
#define KEY_MAX_SHOWN 200

struct setok_config {
    char *path;
    cJSON *root;
};

// ----------------------------------------------------------------------------
// loading

/* text[0..n): a NUL byte inside is refused (by the strict scan) with its offset. */
static setok_status parse_text(setok_config **out, const char *text, size_t n, const char *name,
                               setok_error *err)
{
    *out = NULL;
    cJSON *root = NULL;
    setok_status st = setok_json_parse(text, n, name, SETOK_JSON_CONFIG_MAX_VALUES, &root, err);
    if (st != SETOK_OK)
        return st;
    if (!cJSON_IsObject(root)) {
        const char *type = setok_io_json_type(root);
        cJSON_Delete(root);
        return setok_fail(err, SETOK_ERR_INPUT, "%s: the top level must be a JSON object, got %s",
                          name, type);
    }
    setok_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->path = strdup(name))) {
        free(cfg);
        cJSON_Delete(root);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", name);
    }
    cfg->root = root;
    *out = cfg;
    return SETOK_OK;
}

setok_status setok_config_parse(setok_config **out, const char *text, const char *name,
                                setok_error *err)
{
    return parse_text(out, text, strlen(text), name ? name : "<config>", err);
}

setok_status setok_config_load_in(setok_config **out, const char *dir, const char *name,
                                  bool optional, setok_error *err)
{
    *out = NULL;
    char *path = setok_path_join_alloc(dir, name);
    if (!path)
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", dir);
    setok_status st = optional && !setok_is_file(path) ? SETOK_OK
                                                        : setok_config_load(out, path, err);
    free(path);
    return st;
}

setok_status setok_config_read(const char *dir, setok_config_parser parse, void *out,
                               setok_error *err)
{
    setok_config *json = NULL;
    setok_status st = setok_config_load_in(&json, dir, "config.json", false, err);
    if (st == SETOK_OK)
        st = parse(json, out, err);
    setok_config_free(json);
    return st;
}

setok_status setok_config_load(setok_config **out, const char *path, setok_error *err)
{
    *out = NULL;
    int fd;
    uint64_t file_size;
    setok_status status = setok_io_open_regular(path, "a JSON file", &fd, &file_size, err);
    if (status != SETOK_OK)
        return status;
    if (file_size > CONFIG_MAX_BYTES)
        status = setok_fail(err, SETOK_ERR_INPUT,
                            "%s: file is %llu bytes, more than the %u-byte limit for JSON files",
                            path, (unsigned long long)file_size, CONFIG_MAX_BYTES);
    char *text = NULL;
    if (status == SETOK_OK) {
        size_t size = (size_t)file_size, got = 0;
        text = malloc(size + 1);
        if (!text)
            status = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
        while (status == SETOK_OK && got < size) {
            ssize_t r = read(fd, text + got, size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                status = setok_fail(err, SETOK_ERR_RUNTIME, "%s: read failed: %s", path,
                                    strerror(errno));
            else if (r == 0)
                break; /* the file shrank; parse what is there */
            else
                got += (size_t)r;
        }
        if (status == SETOK_OK) {
            text[got] = '\0';
            status = parse_text(out, text, got, path, err);
        }
    }
    free(text);
    close(fd);
    return status;
}

void setok_config_free(setok_config *cfg)
{
    if (!cfg)
        return;
    cJSON_Delete(cfg->root);
    free(cfg->path);
    free(cfg);
}

const char *setok_config_path(const setok_config *cfg)
{
    return cfg->path;
}

const void *setok_config_root(const setok_config *cfg)
{
    return cfg->root;
}

// ----------------------------------------------------------------------------
// lookup

/* The item at a dotted key: the literal key first, then each split at a dot
 * whose left part names an object. */
static const cJSON *lookup(const cJSON *obj, const char *key)
{
    if (!cJSON_IsObject(obj))
        return NULL;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item)
        return item;
    for (const char *dot = strchr(key, '.'); dot; dot = strchr(dot + 1, '.')) {
        size_t len = (size_t)(dot - key);
        for (const cJSON *c = obj->child; c; c = c->next) {
            if (c->string && cJSON_IsObject(c) && strlen(c->string) == len &&
                memcmp(c->string, key, len) == 0) {
                const cJSON *found = lookup(c, dot + 1);
                if (found)
                    return found;
            }
        }
    }
    return NULL;
}

bool setok_config_has(const setok_config *cfg, const char *key)
{
    return lookup(cfg->root, key) != NULL;
}

/* "got string", "got 1.5": what was found instead. */
static const char *describe(char *buf, size_t size, const cJSON *item)
{
    if (cJSON_IsNumber(item))
        snprintf(buf, size, "%.17g", item->valuedouble);
    else
        snprintf(buf, size, "%s", setok_io_json_type(item));
    return buf;
}

static setok_status type_error(const setok_config *cfg, const char *key, const char *want,
                               const cJSON *item, setok_error *err)
{
    char kb[KEY_MAX_SHOWN], got[64];
    return setok_fail(err, SETOK_ERR_INPUT, "%s: key '%s' must be %s, got %s", cfg->path,
                      setok_io_printable(kb, sizeof kb, key), want,
                      describe(got, sizeof got, item));
}

/* The item, or an error when it is missing. */
static setok_status require(const setok_config *cfg, const char *key, const cJSON **out,
                            setok_error *err)
{
    *out = lookup(cfg->root, key);
    if (*out)
        return SETOK_OK;
    char kb[KEY_MAX_SHOWN];
    return setok_fail(err, SETOK_ERR_INPUT, "%s: missing required key '%s'", cfg->path,
                      setok_io_printable(kb, sizeof kb, key));
}

static bool as_int(const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    /* integral and inside [-2^63, 2^63) */
    if (!(v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0))
        return false;
    *out = (int64_t)v;
    return true;
}

static setok_status get_int(const setok_config *cfg, const char *key, const cJSON *item,
                            int64_t *out, setok_error *err)
{
    return as_int(item, out) ? SETOK_OK : type_error(cfg, key, "an integer", item, err);
}

static setok_status get_double(const setok_config *cfg, const char *key, const cJSON *item,
                               double *out, setok_error *err)
{
    if (!cJSON_IsNumber(item))
        return type_error(cfg, key, "a number", item, err);
    *out = item->valuedouble;
    return SETOK_OK;
}

static setok_status get_bool(const setok_config *cfg, const char *key, const cJSON *item,
                             bool *out, setok_error *err)
{
    if (!cJSON_IsBool(item))
        return type_error(cfg, key, "true or false", item, err);
    *out = cJSON_IsTrue(item);
    return SETOK_OK;
}

static setok_status get_string(const setok_config *cfg, const char *key, const cJSON *item,
                               const char **out, setok_error *err)
{
    if (!cJSON_IsString(item))
        return type_error(cfg, key, "a string", item, err);
    *out = item->valuestring;
    return SETOK_OK;
}

setok_status setok_config_int(const setok_config *cfg, const char *key, int64_t *out,
                              setok_error *err)
{
    const cJSON *item;
    setok_status st = require(cfg, key, &item, err);
    return st != SETOK_OK ? st : get_int(cfg, key, item, out, err);
}

setok_status setok_config_double(const setok_config *cfg, const char *key, double *out,
                                 setok_error *err)
{
    const cJSON *item;
    setok_status st = require(cfg, key, &item, err);
    return st != SETOK_OK ? st : get_double(cfg, key, item, out, err);
}

setok_status setok_config_bool(const setok_config *cfg, const char *key, bool *out,
                               setok_error *err)
{
    const cJSON *item;
    setok_status st = require(cfg, key, &item, err);
    return st != SETOK_OK ? st : get_bool(cfg, key, item, out, err);
}

setok_status setok_config_string(const setok_config *cfg, const char *key, const char **out,
                                 setok_error *err)
{
    const cJSON *item;
    setok_status st = require(cfg, key, &item, err);
    return st != SETOK_OK ? st : get_string(cfg, key, item, out, err);
}

/* Optional values: missing or null means the default. */
static const cJSON *optional(const setok_config *cfg, const char *key)
{
    const cJSON *item = lookup(cfg->root, key);
    return cJSON_IsNull(item) ? NULL : item;
}

setok_status setok_config_int_or(const setok_config *cfg, const char *key, int64_t dflt,
                                 int64_t *out, setok_error *err)
{
    const cJSON *item = optional(cfg, key);
    if (!item) {
        *out = dflt;
        return SETOK_OK;
    }
    return get_int(cfg, key, item, out, err);
}

setok_status setok_config_double_or(const setok_config *cfg, const char *key, double dflt,
                                    double *out, setok_error *err)
{
    const cJSON *item = optional(cfg, key);
    if (!item) {
        *out = dflt;
        return SETOK_OK;
    }
    return get_double(cfg, key, item, out, err);
}

setok_status setok_config_bool_or(const setok_config *cfg, const char *key, bool dflt, bool *out,
                                  setok_error *err)
{
    const cJSON *item = optional(cfg, key);
    if (!item) {
        *out = dflt;
        return SETOK_OK;
    }
    return get_bool(cfg, key, item, out, err);
}

setok_status setok_config_string_or(const setok_config *cfg, const char *key, const char *dflt,
                                    const char **out, setok_error *err)
{
    const cJSON *item = optional(cfg, key);
    if (!item) {
        *out = dflt;
        return SETOK_OK;
    }
    return get_string(cfg, key, item, out, err);
}

setok_status setok_config_limit_or(const setok_config *cfg, const char *key, int64_t dflt,
                                   int64_t *out, setok_error *err)
{
    const cJSON *item = optional(cfg, key);
    if (!item) {
        *out = dflt;
        return SETOK_OK;
    }
    /* past int64 a limit cannot bind: transformers writes int(1e30) for "none" */
    double v = cJSON_IsNumber(item) ? item->valuedouble : 0.0;
    if (v >= 9223372036854775808.0 && v == floor(v) && isfinite(v)) {
        *out = INT64_MAX;
        return SETOK_OK;
    }
    setok_status st = get_int(cfg, key, item, out, err);
    if (st == SETOK_OK && *out < 0) {
        char kb[KEY_MAX_SHOWN];
        return setok_fail(err, SETOK_ERR_INPUT, "%s: key '%s' must be a limit of 0 or more, got "
                          "%lld", cfg->path, setok_io_printable(kb, sizeof kb, key),
                          (long long)*out);
    }
    return st;
}

/* Checks that key is an array of at most max entries; *count gets its length. */
static setok_status get_array(const setok_config *cfg, const char *key, size_t max,
                              const cJSON **out, size_t *count, setok_error *err)
{
    setok_status st = require(cfg, key, out, err);
    if (st != SETOK_OK)
        return st;
    if (!cJSON_IsArray(*out))
        return type_error(cfg, key, "an array", *out, err);
    size_t n = (size_t)cJSON_GetArraySize(*out);
    if (n > max) {
        char kb[KEY_MAX_SHOWN];
        return setok_fail(err, SETOK_ERR_INPUT, "%s: key '%s' has %zu entries, at most %zu allowed",
                          cfg->path, setok_io_printable(kb, sizeof kb, key), n, max);
    }
    *count = n;
    return SETOK_OK;
}

static setok_status element_error(const setok_config *cfg, const char *key, size_t i,
                                  const char *want, const cJSON *item, setok_error *err)
{
    char kb[KEY_MAX_SHOWN], got[64];
    return setok_fail(err, SETOK_ERR_INPUT, "%s: key '%s': entry %zu must be %s, got %s",
                      cfg->path, setok_io_printable(kb, sizeof kb, key), i, want,
                      describe(got, sizeof got, item));
}

setok_status setok_config_int_array(const setok_config *cfg, const char *key, int64_t *out,
                                    size_t max, size_t *count, setok_error *err)
{
    const cJSON *array;
    size_t n = 0;
    setok_status st = get_array(cfg, key, max, &array, &n, err);
    if (st != SETOK_OK)
        return st;
    size_t i = 0;
    for (const cJSON *e = array->child; e; e = e->next, i++)
        if (!as_int(e, &out[i]))
            return element_error(cfg, key, i, "an integer", e, err);
    *count = n;
    return SETOK_OK;
}

setok_status setok_config_double_array(const setok_config *cfg, const char *key, double *out,
                                       size_t max, size_t *count, setok_error *err)
{
    const cJSON *array;
    size_t n = 0;
    setok_status st = get_array(cfg, key, max, &array, &n, err);
    if (st != SETOK_OK)
        return st;
    size_t i = 0;
    for (const cJSON *e = array->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e))
            return element_error(cfg, key, i, "a number", e, err);
        out[i] = e->valuedouble;
    }
    *count = n;
    return SETOK_OK;
}

setok_status setok_config_channels_or(const setok_config *cfg, const char *key, float out[3],
                                     setok_error *err)
{
    const cJSON *item = lookup(cfg->root, key);
    if (!item || cJSON_IsNull(item))
        return SETOK_OK;
    double v[3];
    size_t n = 1;
    setok_status st = cJSON_IsNumber(item) ? setok_config_double(cfg, key, &v[0], err)
                                           : setok_config_double_array(cfg, key, v, 3, &n, err);
    if (st != SETOK_OK)
        return st;
    if (n == 1)
        v[1] = v[2] = v[0];
    else if (n != 3)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s must have 3 entries, got %zu", cfg->path,
                          key, n);
    for (int c = 0; c < 3; c++)
        out[c] = (float)v[c];
    return SETOK_OK;
}

setok_status setok_config_int_in(const setok_config *cfg, const char *key, bool required, int lo,
                                 int hi, int *inout, setok_error *err)
{
    int64_t v = *inout;
    setok_status st = required ? setok_config_int(cfg, key, &v, err)
                               : setok_config_int_or(cfg, key, *inout, &v, err);
    if (st != SETOK_OK)
        return st;
    if (v < lo || v > hi)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s is %lld, must be in [%d, %d]", cfg->path,
                          key, (long long)v, lo, hi);
    *inout = (int)v;
    return SETOK_OK;
}
