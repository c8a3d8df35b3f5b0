/* world-render.c — the pixels of the synthetic world: the PRNG, the colour
 * and shape tables, backgrounds, hard-edged shapes and the layout rules.
 *
 * Rules: integer math only, so a seed gives the same bytes on every machine;
 * no anti-aliasing, so labels are exact; background tones stay within a
 * small amplitude of colours that are far from every object colour. */
#include <stdlib.h>
#include <string.h>

#include "world-impl.h"

/* ---------------------------------------------------------------------------
 * PRNG */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t world_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xd1342543de82ef95ull);
    return splitmix64(&x);
}

void world_rng_seed(world_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t world_rng_next(world_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

int world_rng_int(world_rng *r, int lo, int hi)
{
    uint64_t span = (uint64_t)((int64_t)hi - lo) + 1;
    uint64_t limit = UINT64_MAX - UINT64_MAX % span; /* reject the uneven tail */
    uint64_t v;
    do {
        v = world_rng_next(r);
    } while (v >= limit);
    return (int)((int64_t)lo + (int64_t)(v % span));
}

/* ---------------------------------------------------------------------------
 * vocabulary */

const char *const world_shape_names[WORLD_N_SHAPES] = {
    "circle", "square", "triangle", "diamond", "star", "hexagon",
};
const char *const world_size_names[WORLD_N_SIZES] = {"small", "medium", "large"};

/* Saturated, well separated colours; none lies within 60 levels (in every
 * channel) of a background tone. */
const char *const world_colour_names[WORLD_N_COLOURS] = {
    "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "white", "black",
};
const uint8_t world_colour_rgb[WORLD_N_COLOURS][3] = {
    {220, 36, 36},   {246, 136, 20},  {250, 222, 40}, {36, 168, 64},  {36, 202, 222},
    {36, 72, 222},   {138, 56, 200},  {246, 120, 200}, {246, 246, 246}, {24, 24, 24},
};

/* Muted mid tones: the background never uses an object colour. */
const char *const world_bg_colour_names[WORLD_N_BG_COLOURS] = {"gray", "beige", "slate", "sage"};
const uint8_t world_bg_colour_rgb[WORLD_N_BG_COLOURS][3] = {
    {138, 138, 138}, {212, 198, 168}, {98, 112, 130}, {150, 168, 136},
};
const char *const world_bg_kind_names[WORLD_N_BG_KINDS] = {"plain", "stripes", "checks", "noise"};
const char *const world_edit_kind_names[WORLD_N_EDIT_KINDS] = {
    "recolour", "remove", "add", "move", "resize",
};

/* ---------------------------------------------------------------------------
 * shapes */

int world_radius(int size, int width, int height)
{
    static const int per_128[WORLD_N_SIZES] = {7, 11, 16};
    int side = width < height ? width : height;
    int r = (side * per_128[size] + 64) / 128;
    return r < 3 ? 3 : r;
}

/* round(t * r / 1000), halves away from zero */
static int scale_1000(int t, int r)
{
    int v = t * r;
    return v >= 0 ? (v + 500) / 1000 : -((-v + 500) / 1000);
}

/* A five-pointed star, point up: outer vertices on the unit circle every 72
 * degrees, inner ones at half the radius between them (x 1000). */
static const int star_unit[10][2] = {
    {0, -1000}, {294, -405}, {951, -309}, {476, 155},  {588, 809},
    {0, 500},   {-588, 809}, {-476, 155}, {-951, -309}, {-294, -405},
};

/* A shape ready for per-pixel tests: the star's polygon scaled once. */
typedef struct shape_raster {
    const world_object *o;
    int star[10][2];
} shape_raster;

static void raster_init(shape_raster *ras, const world_object *o)
{
    ras->o = o;
    if (o->shape == WORLD_STAR)
        for (int i = 0; i < 10; i++) {
            ras->star[i][0] = scale_1000(star_unit[i][0], o->radius);
            ras->star[i][1] = scale_1000(star_unit[i][1], o->radius);
        }
}

static bool in_star(const int (*v)[2], int dx, int dy)
{
    /* crossing count against the polygon's edges, in exact integers */
    bool inside = false;
    for (int i = 0, j = 9; i < 10; j = i++) {
        int xi = v[i][0], yi = v[i][1], xj = v[j][0], yj = v[j][1];
        if ((yi > dy) == (yj > dy))
            continue;
        /* dx < xi + (dy - yi) * (xj - xi) / (yj - yi), multiplied through by (yj - yi) */
        int64_t lhs = (int64_t)(dx - xi) * (yj - yi);
        int64_t rhs = (int64_t)(dy - yi) * (xj - xi);
        if (yj > yi ? lhs < rhs : lhs > rhs)
            inside = !inside;
    }
    return inside;
}

/* Whether pixel (x, y) lies in the shape. */
static bool raster_contains(const shape_raster *ras, int x, int y)
{
    const world_object *o = ras->o;
    int dx = x - o->cx, dy = y - o->cy, r = o->radius;
    int ax = dx < 0 ? -dx : dx, ay = dy < 0 ? -dy : dy;
    if (ax > r || ay > r)
        return false;
    switch (o->shape) {
    case WORLD_CIRCLE:
        return dx * dx + dy * dy <= r * r + r;
    case WORLD_SQUARE: {
        int s = (7 * r + 4) / 8; /* about the circle's area */
        return ax <= s && ay <= s;
    }
    case WORLD_TRIANGLE: /* apex at the top, base at the bottom of the box */
        return 2 * ax <= dy + r;
    case WORLD_DIAMOND:
        return ax + ay <= r;
    case WORLD_STAR:
        return in_star((const int (*)[2])ras->star, dx, dy);
    case WORLD_HEXAGON: /* point up; half width r * 13/15 ~ r * sqrt(3)/2 */
        return 15 * ax <= 13 * r && 26 * ay + 15 * ax <= 26 * r;
    }
    return false;
}

/* ---------------------------------------------------------------------------
 * rendering */

static uint8_t clamp_u8(int v)
{
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* The background offset of pixel (x, y), in -amplitude..amplitude. */
static int background_offset(const world_background *bg, int x, int y)
{
    int a = bg->amplitude, p = bg->period;
    switch (bg->kind) {
    case WORLD_BG_STRIPES: {
        int t = bg->direction == 0 ? y : bg->direction == 1 ? x : x + y;
        return (t / p) % 2 ? a : -a;
    }
    case WORLD_BG_CHECKS:
        return (x / p + y / p) % 2 ? a : -a;
    case WORLD_BG_NOISE: {
        /* 2 x 2 blocks, so the speckle survives a little resizing */
        uint64_t h = world_mix(bg->noise_key, ((uint64_t)(y / 2) << 32) | (uint32_t)(x / 2));
        return (int)(h % (uint64_t)(2 * a + 1)) - a;
    }
    default:
        return 0;
    }
}

void world_render(uint8_t *rgb, uint8_t *labels, int width, int height,
                  const world_background *bg, const world_object *objects, int n)
{
    memset(labels, 0, (size_t)width * height);
    if (rgb) {
        const uint8_t *base = world_bg_colour_rgb[bg->colour];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) {
                int d = background_offset(bg, x, y);
                uint8_t *px = rgb + ((size_t)y * width + x) * 3;
                for (int c = 0; c < 3; c++)
                    px[c] = clamp_u8(base[c] + d);
            }
    }
    for (int i = 0; i < n; i++) {
        const world_object *o = &objects[i];
        const uint8_t *col = world_colour_rgb[o->colour];
        shape_raster ras = {0};
        raster_init(&ras, o);
        for (int y = o->cy - o->radius; y <= o->cy + o->radius; y++) {
            if (y < 0 || y >= height)
                continue;
            for (int x = o->cx - o->radius; x <= o->cx + o->radius; x++) {
                if (x < 0 || x >= width || !raster_contains(&ras, x, y))
                    continue;
                size_t p = (size_t)y * width + x;
                labels[p] = (uint8_t)o->id;
                if (rgb)
                    memcpy(rgb + p * 3, col, 3);
            }
        }
    }
}

static int shape_area(const world_object *o)
{
    int area = 0;
    shape_raster ras = {0};
    raster_init(&ras, o);
    for (int y = o->cy - o->radius; y <= o->cy + o->radius; y++)
        for (int x = o->cx - o->radius; x <= o->cx + o->radius; x++)
            area += raster_contains(&ras, x, y);
    return area;
}

int world_raster_mask(uint8_t *mask, int width, int height, const world_object *o)
{
    int area = 0;
    shape_raster ras = {0};
    raster_init(&ras, o);
    memset(mask, 0, (size_t)width * height);
    for (int y = o->cy - o->radius; y <= o->cy + o->radius; y++) {
        if (y < 0 || y >= height)
            continue;
        for (int x = o->cx - o->radius; x <= o->cx + o->radius; x++)
            if (x >= 0 && x < width && raster_contains(&ras, x, y)) {
                mask[(size_t)y * width + x] = 255;
                area++;
            }
    }
    return area;
}

static bool boxes_touch(const world_object *a, const world_object *b, int gap)
{
    int reach = a->radius + b->radius + gap;
    return abs(a->cx - b->cx) <= reach && abs(a->cy - b->cy) <= reach;
}

bool world_layout_ok(uint8_t *scratch, int width, int height, const world_object *objects,
                     int n)
{
    world_object tmp[SETOK_WORLD_MAX_OBJECTS] = {{0}};
    if (n > SETOK_WORLD_MAX_OBJECTS)
        return false;
    for (int i = 0; i < n; i++) {
        const world_object *o = &objects[i];
        if (o->cx - o->radius < 1 || o->cy - o->radius < 1 || o->cx + o->radius > width - 2
            || o->cy + o->radius > height - 2)
            return false;
        for (int j = 0; j < i; j++)
            if (objects[j].colour == o->colour && boxes_touch(&objects[j], o, 1))
                return false;
        tmp[i] = *o;
        tmp[i].id = i + 1; /* labels by position: ids may have gaps */
    }
    world_render(NULL, scratch, width, height, NULL, tmp, n);
    for (int i = 0; i < n; i++) {
        const world_object *o = &tmp[i];
        if (scratch[(size_t)o->cy * width + o->cx] != o->id)
            return false;
        int visible = 0;
        for (int y = o->cy - o->radius; y <= o->cy + o->radius; y++)
            for (int x = o->cx - o->radius; x <= o->cx + o->radius; x++)
                visible += scratch[(size_t)y * width + x] == o->id;
        if (2 * visible < shape_area(o))
            return false;
    }
    return true;
}

void world_measure(setok_world_scene *s)
{
    int index_of[256];
    for (int v = 0; v < 256; v++)
        index_of[v] = -1;
    for (int i = 0; i < s->n_objects; i++) {
        world_object_stats *st = &s->stats[i];
        index_of[s->objects[i].id] = i;
        *st = (world_object_stats){.x0 = s->width, .y0 = s->height};
        st->full_area = shape_area(&s->objects[i]);
    }
    for (int y = 0; y < s->height; y++)
        for (int x = 0; x < s->width; x++) {
            int i = index_of[s->labels[(size_t)y * s->width + x]];
            if (i < 0)
                continue;
            world_object_stats *st = &s->stats[i];
            st->area++;
            if (x < st->x0) st->x0 = x;
            if (y < st->y0) st->y0 = y;
            if (x + 1 > st->x1) st->x1 = x + 1;
            if (y + 1 > st->y1) st->y1 = y + 1;
        }
    /* j occludes i when a later shape shares a pixel with it */
    for (int i = 0; i < s->n_objects; i++)
        for (int j = i + 1; j < s->n_objects; j++) {
            const world_object *a = &s->objects[i], *b = &s->objects[j];
            if (!boxes_touch(a, b, 0))
                continue;
            bool shared = false;
            shape_raster ra = {0}, rb = {0};
            raster_init(&ra, a);
            raster_init(&rb, b);
            for (int y = a->cy - a->radius; y <= a->cy + a->radius && !shared; y++)
                for (int x = a->cx - a->radius; x <= a->cx + a->radius && !shared; x++)
                    shared = raster_contains(&ra, x, y) && raster_contains(&rb, x, y);
            if (shared)
                s->stats[i].occluders |= 1u << j;
        }
}
