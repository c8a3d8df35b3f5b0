/* world.c — the synthetic world's scenes: options, layout, edit plans and
 * the public API (engine/include/setok/world.h).
 *
 * Three independent PRNG streams keep parts from shifting each other: the
 * layout stream (seed), and the edit and text streams (seed + edit path), so
 * an edit target keeps its source's background and objects exactly and only
 * redraws what the edit changed. */
#include <stdlib.h>
#include <string.h>

#include "world-impl.h"

enum {
    PLACE_TRIES = 300,      /* per object, before giving up on it */
    PLACE_RESTARTS = 64,    /* whole layouts, when fewer than min_objects fit */
    NEAR_PERCENT = 45,      /* objects placed next to another, for partial occlusion */
    EDIT_TRIES = 40,
};

void setok_world_options_default(setok_world_options *o)
{
    *o = (setok_world_options){.width = 128, .height = 128, .min_objects = 1, .max_objects = 6};
}

static setok_status check_options(const setok_world_options *o, setok_error *err)
{
    if (o->width < SETOK_WORLD_MIN_SIDE || o->width > SETOK_WORLD_MAX_SIDE
        || o->height < SETOK_WORLD_MIN_SIDE || o->height > SETOK_WORLD_MAX_SIDE)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "world: scene size must be %d..%d pixels a side, got %d x %d",
                          SETOK_WORLD_MIN_SIDE, SETOK_WORLD_MAX_SIDE, o->width, o->height);
    if (o->min_objects < 1 || o->max_objects > SETOK_WORLD_MAX_OBJECTS
        || o->min_objects > o->max_objects)
        return setok_fail(err, SETOK_ERR_INPUT,
                          "world: object counts must satisfy 1 <= min <= max <= %d, got %d..%d",
                          SETOK_WORLD_MAX_OBJECTS, o->min_objects, o->max_objects);
    return SETOK_OK;
}

static setok_world_scene *scene_alloc(int width, int height)
{
    setok_world_scene *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->width = width;
    s->height = height;
    s->rgb = malloc((size_t)width * height * 3);
    s->labels = malloc((size_t)width * height);
    if (!s->rgb || !s->labels) {
        setok_world_free(s);
        return NULL;
    }
    return s;
}

void setok_world_free(setok_world_scene *s)
{
    if (!s)
        return;
    free(s->rgb);
    free(s->labels);
    free(s->json);
    free(s);
}

/* ---------------------------------------------------------------------------
 * layout */

static void choose_background(world_background *bg, world_rng *r)
{
    int pick = world_rng_int(r, 0, 9); /* 40 % plain, the rest textured */
    bg->kind = pick < 4 ? WORLD_BG_PLAIN : pick < 6 ? WORLD_BG_STRIPES
               : pick < 8 ? WORLD_BG_CHECKS : WORLD_BG_NOISE;
    bg->colour = world_rng_int(r, 0, WORLD_N_BG_COLOURS - 1);
    bg->amplitude = bg->kind == WORLD_BG_PLAIN ? 0 : world_rng_int(r, 4, 10);
    bg->period = bg->kind == WORLD_BG_STRIPES ? world_rng_int(r, 3, 8)
                 : bg->kind == WORLD_BG_CHECKS ? world_rng_int(r, 6, 14) : 1;
    bg->direction = world_rng_int(r, 0, 2);
    bg->noise_key = world_rng_next(r);
}

/* A random object of the given size whose box lies inside the scene; half
 * the time (NEAR_PERCENT) next to one already placed, so shapes overlap. */
static world_object random_object(const setok_world_scene *s, world_rng *r, int size, int n)
{
    world_object o = {.id = n + 1};
    o.shape = world_rng_int(r, 0, WORLD_N_SHAPES - 1);
    o.colour = world_rng_int(r, 0, WORLD_N_COLOURS - 1);
    o.size = size;
    o.radius = world_radius(size, s->width, s->height);
    int lo_x = o.radius + 1, hi_x = s->width - 2 - o.radius;
    int lo_y = o.radius + 1, hi_y = s->height - 2 - o.radius;
    if (n > 0 && world_rng_int(r, 0, 99) < NEAR_PERCENT) {
        const world_object *a = &s->objects[world_rng_int(r, 0, n - 1)];
        int reach = a->radius + o.radius * 3 / 4;
        o.cx = a->cx + world_rng_int(r, -reach, reach);
        o.cy = a->cy + world_rng_int(r, -reach, reach);
    } else {
        o.cx = world_rng_int(r, lo_x, hi_x);
        o.cy = world_rng_int(r, lo_y, hi_y);
    }
    return o;
}

static bool place_objects(setok_world_scene *s, world_rng *r, uint8_t *scratch)
{
    for (int restart = 0; restart < PLACE_RESTARTS; restart++) {
        int want = world_rng_int(r, s->min_objects, s->max_objects), n = 0;
        for (int i = 0; i < want; i++) {
            bool placed = false;
            for (int t = 0; t < PLACE_TRIES && !placed; t++) {
                /* the last third of the tries only small shapes, which fit anywhere */
                int size = t < PLACE_TRIES * 2 / 3 ? world_rng_int(r, 0, WORLD_N_SIZES - 1)
                                                   : WORLD_SMALL;
                s->objects[n] = random_object(s, r, size, n);
                placed = world_layout_ok(scratch, s->width, s->height, s->objects, n + 1);
            }
            if (!placed)
                break;
            n++;
        }
        if (n >= s->min_objects) {
            s->n_objects = n;
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------------------
 * edits */

/* The target's objects after edit e of s. */
static int edited_objects(const setok_world_scene *s, const world_edit *e, world_object *out)
{
    int n = 0;
    for (int i = 0; i < s->n_objects; i++) {
        if (i != e->index)
            out[n++] = s->objects[i];
        else if (e->kind != WORLD_EDIT_REMOVE)
            out[n++] = e->after;
    }
    if (e->kind == WORLD_EDIT_ADD)
        out[n++] = e->after;
    return n;
}

static bool edit_ok(const setok_world_scene *s, const world_edit *e, uint8_t *scratch)
{
    world_object objs[SETOK_WORLD_MAX_OBJECTS + 1];
    if (e->kind == WORLD_EDIT_ADD && s->n_objects >= SETOK_WORLD_MAX_OBJECTS)
        return false;
    int n = edited_objects(s, e, objs);
    return world_layout_ok(scratch, s->width, s->height, objs, n);
}

/* Where a move sends an object: four directions by a quarter of the scene,
 * or the centre of a corner cell or of the scene (3 x 3 grid). */
static bool move_target(const setok_world_scene *s, const world_object *o, int move, world_rng *r,
                        int *cx, int *cy)
{
    int step = (s->width < s->height ? s->width : s->height) / 4;
    int col = o->cx * 3 / s->width, row = o->cy * 3 / s->height;
    int jx = world_rng_int(r, -s->width / 24, s->width / 24);
    int jy = world_rng_int(r, -s->height / 24, s->height / 24);
    int left = s->width / 6, right = s->width - s->width / 6;
    int top = s->height / 6, bottom = s->height - s->height / 6;
    *cx = o->cx;
    *cy = o->cy;
    switch (move) {
    case WORLD_MOVE_LEFT: *cx -= step; return true;
    case WORLD_MOVE_RIGHT: *cx += step; return true;
    case WORLD_MOVE_UP: *cy -= step; return true;
    case WORLD_MOVE_DOWN: *cy += step; return true;
    case WORLD_MOVE_TOP_LEFT: *cx = left + jx; *cy = top + jy; break;
    case WORLD_MOVE_TOP_RIGHT: *cx = right + jx; *cy = top + jy; break;
    case WORLD_MOVE_BOTTOM_LEFT: *cx = left + jx; *cy = bottom + jy; break;
    case WORLD_MOVE_BOTTOM_RIGHT: *cx = right + jx; *cy = bottom + jy; break;
    default: *cx = s->width / 2 + jx; *cy = s->height / 2 + jy; break;
    }
    /* a place move must leave the object's current cell */
    return *cx * 3 / s->width != col || *cy * 3 / s->height != row;
}

static bool plan_edit(const setok_world_scene *s, int kind, const int *refer, int n_refer,
                      world_rng *r, uint8_t *scratch, world_edit *e)
{
    int max_id = 0;
    for (int i = 0; i < s->n_objects; i++)
        max_id = s->objects[i].id > max_id ? s->objects[i].id : max_id;
    for (int t = 0; t < EDIT_TRIES; t++) {
        *e = (world_edit){.kind = kind, .index = -1};
        if (kind == WORLD_EDIT_ADD) {
            if (s->n_objects >= SETOK_WORLD_MAX_OBJECTS || max_id >= 255)
                return false;
            world_object o = random_object(s, r, world_rng_int(r, 0, WORLD_N_SIZES - 1), 0);
            o.id = max_id + 1;
            bool free_space = true; /* the new shape covers nothing */
            for (int i = 0; i < s->n_objects && free_space; i++) {
                const world_object *b = &s->objects[i];
                int reach = o.radius + b->radius + 2;
                free_space = abs(o.cx - b->cx) > reach || abs(o.cy - b->cy) > reach;
            }
            e->after = o;
            if (free_space && edit_ok(s, e, scratch))
                return true;
            continue;
        }
        if (n_refer == 0 || (kind == WORLD_EDIT_REMOVE && s->n_objects < 2))
            return false;
        e->index = refer[world_rng_int(r, 0, n_refer - 1)];
        const world_object *o = &s->objects[e->index];
        e->after = *o;
        switch (kind) {
        case WORLD_EDIT_RECOLOUR:
            e->colour = (o->colour + world_rng_int(r, 1, WORLD_N_COLOURS - 1)) % WORLD_N_COLOURS;
            e->after.colour = e->colour;
            break;
        case WORLD_EDIT_MOVE:
            e->move = world_rng_int(r, 0, WORLD_N_MOVES - 1);
            if (!move_target(s, o, e->move, r, &e->after.cx, &e->after.cy))
                continue;
            break;
        case WORLD_EDIT_RESIZE:
            e->size = o->size == WORLD_SMALL ? WORLD_MEDIUM
                      : o->size == WORLD_LARGE ? WORLD_MEDIUM
                      : world_rng_int(r, 0, 1) ? WORLD_LARGE : WORLD_SMALL;
            e->after.size = e->size;
            e->after.radius = world_radius(e->size, s->width, s->height);
            break;
        default:
            break;
        }
        if (edit_ok(s, e, scratch))
            return true;
    }
    return false;
}

static void plan_edits(setok_world_scene *s, uint8_t *scratch)
{
    world_rng r;
    world_rng_seed(&r, world_mix(s->key, 0xed175ull));
    int refer[SETOK_WORLD_MAX_OBJECTS], n_refer = 0;
    char phrase[256];
    for (int i = 0; i < s->n_objects; i++)
        if (world_refer(s, i, phrase, sizeof phrase))
            refer[n_refer++] = i;
    s->n_edits = 0;
    for (int kind = 0; kind < WORLD_N_EDIT_KINDS; kind++)
        if (plan_edit(s, kind, refer, n_refer, &r, scratch, &s->edits[s->n_edits]))
            s->n_edits++;
}

/* Pixels, statistics, edit plans and the annotation of a laid-out scene. */
static setok_status finish_scene(setok_world_scene *s, setok_error *err)
{
    world_render(s->rgb, s->labels, s->width, s->height, &s->bg, s->objects, s->n_objects);
    world_measure(s);
    uint8_t *scratch = malloc((size_t)s->width * s->height);
    if (!scratch)
        return setok_fail(err, SETOK_ERR_NOMEM, "world: out of memory");
    plan_edits(s, scratch);
    free(scratch);
    if (!world_annotate(s))
        return setok_fail(err, SETOK_ERR_NOMEM, "world: out of memory for the annotation");
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * API */

setok_status setok_world_generate(setok_world_scene **out, uint64_t seed,
                                  const setok_world_options *o, setok_error *err)
{
    setok_world_options def;
    if (!out)
        return setok_fail(err, SETOK_ERR_INPUT, "world: no output scene given");
    *out = NULL;
    if (!o) {
        setok_world_options_default(&def);
        o = &def;
    }
    setok_status st = check_options(o, err);
    if (st != SETOK_OK)
        return st;
    setok_world_scene *s = scene_alloc(o->width, o->height);
    if (!s)
        return setok_fail(err, SETOK_ERR_NOMEM, "world: out of memory for a %d x %d scene",
                          o->width, o->height);
    s->seed = seed;
    s->key = world_mix(seed, 0x5ce7eull);
    s->min_objects = o->min_objects;
    s->max_objects = o->max_objects;
    world_rng r;
    world_rng_seed(&r, world_mix(seed, 0x1a7002ull));
    choose_background(&s->bg, &r);
    /* the labels buffer is free until rendering: the layout checks draw in it */
    if (!place_objects(s, &r, s->labels)) {
        setok_world_free(s);
        return setok_fail(err, SETOK_ERR_INPUT,
                          "world: seed %llu: cannot fit %d objects in %d x %d",
                          (unsigned long long)seed, o->min_objects, o->width, o->height);
    }
    st = finish_scene(s, err);
    if (st != SETOK_OK) {
        setok_world_free(s);
        return st;
    }
    *out = s;
    return SETOK_OK;
}

setok_status setok_world_apply_edit(setok_world_scene **out, const setok_world_scene *src,
                                    int index, setok_error *err)
{
    if (!out || !src)
        return setok_fail(err, SETOK_ERR_INPUT, "world: no scene given");
    *out = NULL;
    if (index < 0 || index >= src->n_edits)
        return setok_fail(err, SETOK_ERR_INPUT, "world: seed %llu has %d edits, no edit %d",
                          (unsigned long long)src->seed, src->n_edits, index);
    if (src->path_len >= WORLD_MAX_PATH)
        return setok_fail(err, SETOK_ERR_INPUT, "world: edits chain at most %d deep",
                          WORLD_MAX_PATH);
    setok_world_scene *s = scene_alloc(src->width, src->height);
    if (!s)
        return setok_fail(err, SETOK_ERR_NOMEM, "world: out of memory for a %d x %d scene",
                          src->width, src->height);
    s->seed = src->seed;
    s->key = world_mix(src->key, (uint64_t)index + 1);
    s->min_objects = src->min_objects;
    s->max_objects = src->max_objects;
    s->bg = src->bg;
    s->n_objects = edited_objects(src, &src->edits[index], s->objects);
    s->path_len = src->path_len + 1;
    memcpy(s->path, src->path, sizeof s->path);
    s->path[src->path_len] = index;
    setok_status st = finish_scene(s, err);
    if (st != SETOK_OK) {
        setok_world_free(s);
        return st;
    }
    *out = s;
    return SETOK_OK;
}

int setok_world_width(const setok_world_scene *s)
{
    return s ? s->width : 0;
}

int setok_world_height(const setok_world_scene *s)
{
    return s ? s->height : 0;
}

const uint8_t *setok_world_rgb(const setok_world_scene *s)
{
    return s ? s->rgb : NULL;
}

const uint8_t *setok_world_labels(const setok_world_scene *s)
{
    return s ? s->labels : NULL;
}

const char *setok_world_json(const setok_world_scene *s)
{
    return s ? s->json : NULL;
}

int setok_world_edit_count(const setok_world_scene *s)
{
    return s ? s->n_edits : 0;
}

/* ---------------------------------------------------------------------------
 * vocabulary and shapes, for readers of world images */

_Static_assert(WORLD_N_SHAPES == SETOK_WORLD_N_SHAPES, "shape count");
_Static_assert(WORLD_N_COLOURS == SETOK_WORLD_N_COLOURS, "colour count");
_Static_assert(WORLD_N_SIZES == SETOK_WORLD_N_SIZES, "size count");

const char *setok_world_shape_name(int shape)
{
    return shape >= 0 && shape < WORLD_N_SHAPES ? world_shape_names[shape] : NULL;
}

const char *setok_world_colour_name(int colour)
{
    return colour >= 0 && colour < WORLD_N_COLOURS ? world_colour_names[colour] : NULL;
}

const char *setok_world_size_name(int size)
{
    return size >= 0 && size < WORLD_N_SIZES ? world_size_names[size] : NULL;
}

static int name_index(const char *name, const char *const *names, int n)
{
    for (int i = 0; name && i < n; i++)
        if (!strcmp(name, names[i]))
            return i;
    return -1;
}

int setok_world_shape_index(const char *name)
{
    return name_index(name, world_shape_names, WORLD_N_SHAPES);
}

int setok_world_colour_index(const char *name)
{
    return name_index(name, world_colour_names, WORLD_N_COLOURS);
}

int setok_world_size_index(const char *name)
{
    return name_index(name, world_size_names, WORLD_N_SIZES);
}

const uint8_t *setok_world_colour_rgb(int colour)
{
    return colour >= 0 && colour < WORLD_N_COLOURS ? world_colour_rgb[colour] : NULL;
}

int setok_world_size_radius(int size, int width, int height)
{
    return size >= 0 && size < WORLD_N_SIZES && width > 0 && height > 0
               ? world_radius(size, width, height)
               : 0;
}

setok_status setok_world_rasterize(uint8_t *mask, int width, int height, int shape, int cx,
                                   int cy, int radius, int *area, setok_error *err)
{
    if (!mask || width < 1 || height < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "world: rasterize needs a mask of at least 1 x 1");
    if (shape < 0 || shape >= WORLD_N_SHAPES)
        return setok_fail(err, SETOK_ERR_INPUT, "world: no shape %d (0..%d)", shape,
                          WORLD_N_SHAPES - 1);
    if (radius < 1 || radius > SETOK_WORLD_MAX_SIDE)
        return setok_fail(err, SETOK_ERR_INPUT, "world: radius must be 1..%d, got %d",
                          SETOK_WORLD_MAX_SIDE, radius);
    if (cx < -(1 << 20) || cx > (1 << 20) || cy < -(1 << 20) || cy > (1 << 20))
        return setok_fail(err, SETOK_ERR_INPUT, "world: centre (%d, %d) is out of range", cx, cy);
    world_object o = {.shape = shape, .cx = cx, .cy = cy, .radius = radius};
    int n = world_raster_mask(mask, width, height, &o);
    if (area)
        *area = n;
    return SETOK_OK;
}
