/* world.h — the synthetic world: scenes of flat coloured shapes with exact
 * per-object masks and their text (DESIGN §9).
 *
 * A scene is a pure function of its seed and options, on every machine: the
 * generator has its own PRNG and integer geometry, and draws hard edges
 * without anti-aliasing, so every pixel of object k has exactly object k's
 * colour and no background pixel ever has an object colour.
 *
 * Each scene carries one annotation record (JSON) with its objects, a
 * caption, questions with one-word answers, referring expressions, a
 * generation prompt and edit instructions. setok_world_apply_edit renders the
 * exact target of an edit: same background, other objects untouched, object
 * ids kept (a removed id disappears; an added object takes the next id).
 *
 * Annotation geometry: "center" is the shape's reference point [x, y] (the
 * centre of its box; always a visible pixel of the object), "bbox" is
 * [x0, y0, x1, y1) of its visible pixels (x1, y1 one past the last), "area"
 * the count of its visible pixels, "full_area" the pixels of the whole
 * shape, "occluded_by" the ids of later objects covering part of it. */
#ifndef SETOK_WORLD_H
#define SETOK_WORLD_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SETOK_WORLD_MIN_SIDE 64
#define SETOK_WORLD_MAX_SIDE 2048
#define SETOK_WORLD_MAX_OBJECTS 8

typedef struct setok_world_options {
    int width, height;             /* SETOK_WORLD_MIN_SIDE..SETOK_WORLD_MAX_SIDE */
    int min_objects, max_objects;  /* 1 <= min <= max <= SETOK_WORLD_MAX_OBJECTS */
} setok_world_options;

/* 128 x 128, 1..6 objects. */
void setok_world_options_default(setok_world_options *o);

typedef struct setok_world_scene setok_world_scene;

/* Renders the scene of seed; o NULL means the defaults. Bad options give
 * SETOK_ERR_INPUT. */
setok_status setok_world_generate(setok_world_scene **out, uint64_t seed,
                                  const setok_world_options *o, setok_error *err);

/* The exact target scene of edit number index (annotation "edits"[index]);
 * same background, other objects untouched. The target has its own
 * annotation (with "edit_path"), and its own edits. */
setok_status setok_world_apply_edit(setok_world_scene **out, const setok_world_scene *src,
                                    int index, setok_error *err);

int setok_world_width(const setok_world_scene *s);
int setok_world_height(const setok_world_scene *s);
/* [h*w*3] RGB8, row-major */
const uint8_t *setok_world_rgb(const setok_world_scene *s);
/* [h*w]: 0 background, k = visible pixel of object id k */
const uint8_t *setok_world_labels(const setok_world_scene *s);
/* the annotation record (one JSON object, no newline) */
const char *setok_world_json(const setok_world_scene *s);
/* the number of entries in the annotation's "edits" */
int setok_world_edit_count(const setok_world_scene *s);
void setok_world_free(setok_world_scene *s);

#ifdef __cplusplus
}
#endif
#endif
