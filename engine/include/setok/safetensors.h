/* safetensors.h — validated, mmapped safetensors files, and a writer.
 *
 * A model file is untrusted input. Opening one checks: the 8-byte little-
 * endian header length is bounded by the file and by 100 MB; the header is
 * UTF-8 JSON whose top level is an object; names are non-empty, valid UTF-8
 * and unique; every entry has a known dtype, a shape of non-negative integers
 * whose byte size does not overflow and equals end - begin, and
 * data_offsets [begin, end] inside the data buffer; sorted by begin, the
 * entries tile the buffer without overlap or holes; "__metadata__", if
 * present, maps strings to strings. Errors name the file, the tensor and the
 * rule broken. */
#ifndef SETOK_SAFETENSORS_H
#define SETOK_SAFETENSORS_H

#include "export.h"

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SETOK_ST_MAX_HEADER (100u * 1000u * 1000u)
#define SETOK_ST_MAX_DIMS 8

/* Every dtype the format names. Only F32/F16/BF16/I32 map to setok_dtype. */
typedef enum setok_st_dtype {
    SETOK_ST_BOOL = 0,
    SETOK_ST_U8, SETOK_ST_I8, SETOK_ST_U16, SETOK_ST_I16, SETOK_ST_U32, SETOK_ST_I32,
    SETOK_ST_U64, SETOK_ST_I64,
    SETOK_ST_F8_E4M3, SETOK_ST_F8_E5M2, SETOK_ST_F16, SETOK_ST_BF16, SETOK_ST_F32, SETOK_ST_F64,
    SETOK_ST_DTYPE_COUNT
} setok_st_dtype;

SETOK_API const char *setok_st_dtype_name(setok_st_dtype dtype);
SETOK_API size_t setok_st_dtype_size(setok_st_dtype dtype);
/* SETOK_DTYPE_COUNT when the file dtype has no engine dtype. */
SETOK_API setok_dtype setok_st_dtype_to_engine(setok_st_dtype dtype);

typedef struct setok_st_tensor {
    const char *name;
    setok_st_dtype dtype;
    int ndim;
    int64_t shape[SETOK_ST_MAX_DIMS];
    uint64_t nbytes;
    const void *data;           /* inside the mapping; may be unaligned */
    const char *file;           /* path of the file that holds it */
} setok_st_tensor;

typedef struct setok_safetensors setok_safetensors;

SETOK_API setok_status setok_safetensors_open(setok_safetensors **out, const char *path, setok_error *err);
SETOK_API void setok_safetensors_close(setok_safetensors *st);

SETOK_API const char *setok_safetensors_path(const setok_safetensors *st);
SETOK_API size_t setok_safetensors_count(const setok_safetensors *st);
/* Tensors in file order of data offsets. */
SETOK_API const setok_st_tensor *setok_safetensors_at(const setok_safetensors *st, size_t i);
SETOK_API const setok_st_tensor *setok_safetensors_find(const setok_safetensors *st, const char *name);
/* Value of a "__metadata__" key, or NULL. */
SETOK_API const char *setok_safetensors_metadata(const setok_safetensors *st, const char *key);
SETOK_API size_t setok_safetensors_metadata_count(const setok_safetensors *st);
SETOK_API void setok_safetensors_metadata_at(const setok_safetensors *st, size_t i, const char **key,
                                   const char **value);

/* Writing: entries are written in the order given, 8-byte aligned header. */
typedef struct setok_st_entry {
    const char *name;
    setok_st_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;           /* host memory, nbytes = numel * itemsize */
} setok_st_entry;

/* metadata: NULL or key/value pairs, NULL-terminated: {"format", "pt", NULL}. */
SETOK_API setok_status setok_safetensors_write(const char *path, const setok_st_entry *entries,
                                     size_t count, const char *const *metadata,
                                     setok_error *err);

/* Element i of a float file tensor (F16, BF16, F32, F64) as double, read
 * through memcpy since file data may be unaligned; 0 for other dtypes. */
SETOK_API double setok_st_tensor_float_at(const setok_st_tensor *t, uint64_t i);

/* An engine tensor view of a file tensor (host memory, read-only by
 * contract). Fails (SETOK_ERR_UNSUPPORTED) for dtypes the engine lacks, more
 * than 4 dims, or data not aligned to its element size (the format does not
 * promise alignment): model code loads through setok_weights_load. */
SETOK_API setok_status setok_st_tensor_view(setok_tensor *out, const setok_st_tensor *t, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
