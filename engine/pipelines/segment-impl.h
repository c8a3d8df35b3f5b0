/* segment-impl.h — what the segmenter (segment-mask.c) hands to its SAM path
 * (segment-sam.c). Not installed; not part of the public API. */
#ifndef SETOK_SEGMENT_IMPL_H
#define SETOK_SEGMENT_IMPL_H

#include "setok/arena.h"
#include "setok/model.h"
#include "setok/segment.h"

/* prompt on image through the SAM folder model (its decoder dec, decoding in arena, which
 * grows as needed) -> r. */
setok_status segment_sam_run(setok_model *model, setok_mask_decoder *dec, setok_arena *arena,
                             const setok_image *image, const setok_segment_prompt *prompt,
                             const atomic_bool *cancel, setok_segment_result *r,
                             setok_error *err);

#endif
