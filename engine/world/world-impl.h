/* world-impl.h — the private parts of the synthetic world generator:
 * the scene record, the PRNG, the vocabulary tables, rendering (world-render.c)
 * and text (world-text.c). Everything that decides a pixel is integer math. */
#ifndef SETOK_WORLD_IMPL_H
#define SETOK_WORLD_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "setok/world.h"

#define WORLD_MAX_EDITS 5
#define WORLD_MAX_PATH 32

/* ---- PRNG: xoshiro256** seeded through splitmix64 -------------------------------------- */

typedef struct world_rng {
    uint64_t s[4];
} world_rng;

uint64_t world_mix(uint64_t a, uint64_t b);
void world_rng_seed(world_rng *r, uint64_t seed);
uint64_t world_rng_next(world_rng *r);
/* uniform in lo..hi inclusive (lo <= hi), without modulo bias */
int world_rng_int(world_rng *r, int lo, int hi);

/* ---- vocabulary ------------------------------------------------------------------------ */

enum { WORLD_CIRCLE, WORLD_SQUARE, WORLD_TRIANGLE, WORLD_DIAMOND, WORLD_STAR, WORLD_HEXAGON,
       WORLD_N_SHAPES };
enum { WORLD_SMALL, WORLD_MEDIUM, WORLD_LARGE, WORLD_N_SIZES };
enum { WORLD_N_COLOURS = 10, WORLD_N_BG_COLOURS = 4 };
enum { WORLD_BG_PLAIN, WORLD_BG_STRIPES, WORLD_BG_CHECKS, WORLD_BG_NOISE, WORLD_N_BG_KINDS };
enum { WORLD_EDIT_RECOLOUR, WORLD_EDIT_REMOVE, WORLD_EDIT_ADD, WORLD_EDIT_MOVE,
       WORLD_EDIT_RESIZE, WORLD_N_EDIT_KINDS };
/* move targets: four directions, then four corners and the centre */
enum { WORLD_MOVE_LEFT, WORLD_MOVE_RIGHT, WORLD_MOVE_UP, WORLD_MOVE_DOWN, WORLD_MOVE_TOP_LEFT,
       WORLD_MOVE_TOP_RIGHT, WORLD_MOVE_BOTTOM_LEFT, WORLD_MOVE_BOTTOM_RIGHT,
       WORLD_MOVE_CENTRE, WORLD_N_MOVES };

extern const char *const world_shape_names[WORLD_N_SHAPES];
extern const char *const world_size_names[WORLD_N_SIZES];
extern const char *const world_colour_names[WORLD_N_COLOURS];
extern const uint8_t world_colour_rgb[WORLD_N_COLOURS][3];
extern const char *const world_bg_colour_names[WORLD_N_BG_COLOURS];
extern const uint8_t world_bg_colour_rgb[WORLD_N_BG_COLOURS][3];
extern const char *const world_bg_kind_names[WORLD_N_BG_KINDS];
extern const char *const world_edit_kind_names[WORLD_N_EDIT_KINDS];

/* ---- the scene ------------------------------------------------------------------------- */

typedef struct world_object {
    int id;             /* 1..255, the label value; objects are drawn in id order */
    int shape, colour, size;
    int cx, cy;         /* the shape's reference point, a pixel */
    int radius;         /* half the box side: the shape lies in [cx - r, cx + r] */
} world_object;

typedef struct world_background {
    int kind;           /* WORLD_BG_* */
    int colour;         /* index into world_bg_colour_rgb */
    int amplitude;      /* texture tones are colour +- amplitude (low contrast) */
    int period;         /* stripes and checks: pixels per tone */
    int direction;      /* stripes: 0 horizontal, 1 vertical, 2 diagonal */
    uint64_t noise_key; /* noise: per-pixel hash key */
} world_background;

typedef struct world_object_stats {
    int area;           /* visible pixels */
    int full_area;      /* pixels of the whole shape */
    int x0, y0, x1, y1; /* visible box, x1 / y1 one past the end */
    uint32_t occluders; /* bit j: objects[j] covers part of this one */
} world_object_stats;

typedef struct world_edit {
    int kind;           /* WORLD_EDIT_* */
    int index;          /* the object it acts on (index into objects; -1 for add) */
    int colour;         /* recolour: the new colour */
    int size;           /* resize: the new size */
    int move;           /* move: WORLD_MOVE_* */
    world_object after; /* the object as it is in the target (add: the new object) */
} world_edit;

struct setok_world_scene {
    uint64_t seed;
    uint64_t key;       /* seed + edit path: seeds the edit and text streams */
    int width, height;
    int min_objects, max_objects;
    world_background bg;
    int n_objects;
    world_object objects[SETOK_WORLD_MAX_OBJECTS];
    world_object_stats stats[SETOK_WORLD_MAX_OBJECTS];
    int n_edits;
    world_edit edits[WORLD_MAX_EDITS];
    int path_len;
    int path[WORLD_MAX_PATH];
    uint8_t *rgb;       /* [h * w * 3] */
    uint8_t *labels;    /* [h * w] */
    char *json;
};

/* ---- rendering (world-render.c) -------------------------------------------------------- */

/* The radius of a size class in a width x height scene. */
int world_radius(int size, int width, int height);
/* Paints the background, then the objects in order, into rgb [h*w*3] and
 * labels [h*w]. With rgb NULL only the labels are drawn (bg may be NULL). */
void world_render(uint8_t *rgb, uint8_t *labels, int width, int height,
                  const world_background *bg, const world_object *objects, int n);
/* Draws o's shape (its id and colour unused) into mask [h*w]: 255 inside, 0
 * elsewhere. Returns the pixels drawn. */
int world_raster_mask(uint8_t *mask, int width, int height, const world_object *o);
/* Whether a layout is allowed: every shape inside the image with a 1-pixel
 * margin, every object at least half visible with its reference point
 * visible, objects whose boxes touch of different colours. scratch is
 * [h*w] bytes. */
bool world_layout_ok(uint8_t *scratch, int width, int height, const world_object *objects,
                     int n);
/* Fills s->stats from s->labels. */
void world_measure(setok_world_scene *s);

/* ---- text (world-text.c) --------------------------------------------------------------- */

/* Builds s->json (caption, questions, referring expressions, prompt, edit
 * instructions). Returns false when out of memory. */
bool world_annotate(setok_world_scene *s);
/* Writes "the [size] [colour] shape [position]" singling out objects[i] with
 * every attribute available; false when no such phrase is unique. */
bool world_refer(const setok_world_scene *s, int i, char *out, size_t size);

#endif
