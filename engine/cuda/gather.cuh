/* gather.cuh — GET_ROWS, RESIZE_BICUBIC and UPSAMPLE_NEAREST. */
#ifndef SETOK_CUDA_GATHER_CUH
#define SETOK_CUDA_GATHER_CUH

#include "cuda-common.cuh"

setok_status setok_cuda_get_rows(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_resize_bicubic(setok_backend *backend, const setok_op_desc *d,
                                       setok_error *err);
setok_status setok_cuda_upsample_nearest(setok_backend *backend, const setok_op_desc *d,
                                         setok_error *err);

#endif
