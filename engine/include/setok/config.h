/* config.h — JSON configuration files (config.json, setokim.json, ...).
 *
 * A thin, checked layer over cJSON. Keys may be dotted paths into nested
 * objects ("text_config.hidden_size"). A missing required key, or a key of
 * the wrong type, is an error naming the file and the key. */
#ifndef SETOK_CONFIG_H
#define SETOK_CONFIG_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_config setok_config;

/* Files larger than 64 MB are refused. */
SETOK_API setok_status setok_config_load(setok_config **out, const char *path, setok_error *err);
/* dir/name (e.g. "config.json"). optional: a missing file is no error and *out
 * stays NULL. */
SETOK_API setok_status setok_config_load_in(setok_config **out, const char *dir, const char *name,
                                            bool optional, setok_error *err);
/* Reads dir/config.json and hands it to parse(json, out, err): how each
 * component reads its configuration. */
typedef setok_status (*setok_config_parser)(const setok_config *json, void *out,
                                            setok_error *err);
SETOK_API setok_status setok_config_read(const char *dir, setok_config_parser parse, void *out,
                                         setok_error *err);
SETOK_API setok_status setok_config_parse(setok_config **out, const char *text, const char *name,
                                setok_error *err);
SETOK_API void setok_config_free(setok_config *cfg);
SETOK_API const char *setok_config_path(const setok_config *cfg);
/* The cJSON root, for callers that walk arrays of objects. */
SETOK_API const void *setok_config_root(const setok_config *cfg);

SETOK_API bool setok_config_has(const setok_config *cfg, const char *key);
/* Required: error when missing or mistyped. Integers must be integral
 * numbers in range. */
SETOK_API setok_status setok_config_int(const setok_config *cfg, const char *key, int64_t *out,
                              setok_error *err);
SETOK_API setok_status setok_config_double(const setok_config *cfg, const char *key, double *out,
                                 setok_error *err);
SETOK_API setok_status setok_config_bool(const setok_config *cfg, const char *key, bool *out,
                               setok_error *err);
/* The string stays owned by cfg. */
SETOK_API setok_status setok_config_string(const setok_config *cfg, const char *key, const char **out,
                                 setok_error *err);
/* Optional: the default when missing (or JSON null), an error when mistyped. */
SETOK_API setok_status setok_config_int_or(const setok_config *cfg, const char *key, int64_t dflt,
                                 int64_t *out, setok_error *err);
SETOK_API setok_status setok_config_double_or(const setok_config *cfg, const char *key, double dflt,
                                    double *out, setok_error *err);
SETOK_API setok_status setok_config_bool_or(const setok_config *cfg, const char *key, bool dflt, bool *out,
                                  setok_error *err);
SETOK_API setok_status setok_config_string_or(const setok_config *cfg, const char *key, const char *dflt,
                                    const char **out, setok_error *err);
/* A length limit: an integer, where transformers' stand-ins for "no limit" (its
 * VERY_LARGE_INTEGER, int(1e30), as tokenizer_config.json's model_max_length carries it,
 * and LARGE_INTEGER, int(1e20)) and any other integer past 2^63 read as INT64_MAX
 * (unbounded). Missing or null: dflt. Negative, fractional or non-numeric values are
 * errors naming the file and the key. */
SETOK_API setok_status setok_config_limit_or(const setok_config *cfg, const char *key,
                                             int64_t dflt, int64_t *out, setok_error *err);
/* An integer key that must lie in [lo, hi] and fit an int. When it is not
 * required and missing, *inout keeps its value. Out of range:
 * "FILE: KEY is V, must be in [LO, HI]". */
SETOK_API setok_status setok_config_int_in(const setok_config *cfg, const char *key, bool required, int lo,
                                 int hi, int *inout, setok_error *err);
/* An array of integers (or numbers) into out[0..max); *count gets its length.
 * Errors if longer than max. */
SETOK_API setok_status setok_config_int_array(const setok_config *cfg, const char *key, int64_t *out,
                                    size_t max, size_t *count, setok_error *err);
SETOK_API setok_status setok_config_double_array(const setok_config *cfg, const char *key, double *out,
                                       size_t max, size_t *count, setok_error *err);
/* Per-channel values (image_mean, image_std): one number for all three channels, or
 * an array of three. Missing or null: out keeps its values. */
SETOK_API setok_status setok_config_channels_or(const setok_config *cfg, const char *key,
                                                float out[3], setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
