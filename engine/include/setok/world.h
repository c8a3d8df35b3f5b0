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

#include "export.h"

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
SETOK_API void setok_world_options_default(setok_world_options *o);

typedef struct setok_world_scene setok_world_scene;

/* Renders the scene of seed; o NULL means the defaults. Bad options give
 * SETOK_ERR_INPUT. */
SETOK_API setok_status setok_world_generate(setok_world_scene **out, uint64_t seed,
                                  const setok_world_options *o, setok_error *err);

/* The exact target scene of edit number index (annotation "edits"[index]);
 * same background, other objects untouched. The target has its own
 * annotation (with "edit_path"), and its own edits. */
SETOK_API setok_status setok_world_apply_edit(setok_world_scene **out, const setok_world_scene *src,
                                    int index, setok_error *err);

SETOK_API int setok_world_width(const setok_world_scene *s);
SETOK_API int setok_world_height(const setok_world_scene *s);
/* [h*w*3] RGB8, row-major */
SETOK_API const uint8_t *setok_world_rgb(const setok_world_scene *s);
/* [h*w]: 0 background, k = visible pixel of object id k */
SETOK_API const uint8_t *setok_world_labels(const setok_world_scene *s);
/* the annotation record (one JSON object, no newline) */
SETOK_API const char *setok_world_json(const setok_world_scene *s);
/* the number of entries in the annotation's "edits" */
SETOK_API int setok_world_edit_count(const setok_world_scene *s);
SETOK_API void setok_world_free(setok_world_scene *s);

/* ---- the vocabulary, for code that reads images of the world ----------------------------
 * Indices follow the annotation's names: shapes circle square triangle diamond
 * star hexagon, colours red orange yellow green cyan blue purple pink white
 * black, sizes small medium large. Out-of-range indices give NULL (names,
 * colours) or 0 (radii); unknown names give -1. */

#define SETOK_WORLD_N_SHAPES 6
#define SETOK_WORLD_N_COLOURS 10
#define SETOK_WORLD_N_SIZES 3

SETOK_API const char *setok_world_shape_name(int shape);
SETOK_API const char *setok_world_colour_name(int colour);
SETOK_API const char *setok_world_size_name(int size);
SETOK_API int setok_world_shape_index(const char *name);
SETOK_API int setok_world_colour_index(const char *name);
SETOK_API int setok_world_size_index(const char *name);
/* the object colour's RGB [3] */
SETOK_API const uint8_t *setok_world_colour_rgb(int colour);
/* The radius (half the box side) of a size class in a width x height scene. */
SETOK_API int setok_world_size_radius(int size, int width, int height);

/* Rasterizes shape (SETOK_WORLD_N_SHAPES) of the given radius with its
 * reference point at (cx, cy) into mask [height*width]: 255 on the shape's
 * pixels, 0 elsewhere; *area (may be NULL) gets the pixels drawn. The same
 * rasterizer draws the scenes, so an object's mask equals its labels where it
 * is not occluded. A bad shape, radius (< 1) or size is SETOK_ERR_INPUT. */
SETOK_API setok_status setok_world_rasterize(uint8_t *mask, int width, int height, int shape, int cx,
                                   int cy, int radius, int *area, setok_error *err);

/* ---- reading rendered images (world-analyse.c) --------------------------------------------
 * An analyser independent of any model: it finds the objects in an RGB image
 * of the world (a scene, a generated or an edited image) from the palette and
 * the shapes alone.
 *
 * A pixel is object-coloured when its nearest palette colour c lies within
 * SETOK_WORLD_COLOUR_THRESHOLD (Euclidean RGB) and nearer than the
 * background, and c is not the background's own nearest palette colour
 * (should the background be one). The background is the mean of the image
 * border's most frequent colour bin (16 levels a channel), so striped, checked
 * and noisy backgrounds read as one colour. Components are 4-connected
 * pixels of one palette colour; those smaller than half the smallest small
 * shape's area are specks and ignored. Each component's shape is the world
 * shape (and radius) whose rasterized mask, aligned with the component's
 * box edges or its centroid, has the best IoU with it; its size class is the
 * one whose radius is nearest the fitted radius. */

#define SETOK_WORLD_COLOUR_THRESHOLD 60
#define SETOK_WORLD_NOT_OBJECT 255

typedef struct setok_world_component {
    int colour;         /* palette index (all its pixels have it) */
    int shape, size;    /* best-fitting shape, nearest size class */
    int radius;         /* the fitted shape's radius */
    int cx, cy;         /* the fitted shape's reference point */
    float shape_iou;    /* IoU of the fitted shape's mask with the component */
    int area;           /* pixels */
    int x0, y0, x1, y1; /* box, x1 / y1 one past the end */
} setok_world_component;

typedef struct setok_world_reading {
    int width, height;
    uint8_t background[3];             /* the estimated background colour */
    int background_colour;             /* the palette colour excluded as background, or -1 */
    uint8_t *colours;                  /* [h*w]: palette index, SETOK_WORLD_NOT_OBJECT */
    int32_t *components_map;           /* [h*w]: 1 + component index, 0 none (or a speck) */
    setok_world_component *components; /* [n_components], largest first */
    int n_components;
    int min_area;                      /* components below this are specks */
} setok_world_reading;

/* Reads rgb [height*width*3] (each side SETOK_WORLD_MIN_SIDE..MAX_SIDE) into
 * *out (zeroed first; free with setok_world_reading_free, also after a
 * failure). */
SETOK_API setok_status setok_world_analyse(setok_world_reading *out, const uint8_t *rgb, int width,
                                 int height, setok_error *err);
SETOK_API void setok_world_reading_free(setok_world_reading *r);

#ifdef __cplusplus
}
#endif
#endif
