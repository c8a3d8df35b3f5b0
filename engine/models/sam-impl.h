/* sam-impl.h — private to engine/models: what SAM's image encoder
 * (sam-vision.c) and its processor (sam-preprocess.c) share. */
#ifndef SETOK_MODELS_SAM_IMPL_H
#define SETOK_MODELS_SAM_IMPL_H

/* One output position of F.interpolate(mode="linear" / "bilinear",
 * align_corners=False) along an axis: its two source indices and weights, in
 * PyTorch's float arithmetic. */
typedef struct sam_lerp {
    int i0, i1;
    float w0, w1;
} sam_lerp;

/* out[n_out]: the sources of each output position when n_in values become n_out. */
void sam_lerp_axis(sam_lerp *out, int n_out, int n_in);

#endif
