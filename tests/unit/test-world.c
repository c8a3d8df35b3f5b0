/* test-world.c — the synthetic world: determinism, exact masks, annotations
 * that agree with the pixels and with themselves (answers recomputed here
 * from the object list by parsing the questions), referring expressions that
 * single out their object, exact edit targets, and bad options.
 *
 * The vocabulary below is the annotation language (world.h); the colours'
 * RGB values are learned from the scenes themselves, so the test checks that
 * each name is one flat colour rather than repeating the palette. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/world.h"

#include "check.h"

#define N_SCENES 200
/* FNV-1a of seeds 0..7 (rgb, labels, JSON), pinned in test_determinism */
#define WORLD_GOLDEN_HASH 0x2bfca5b6c11472ddull
#define MAX_OBJ 16

static const char *const sizes[] = {"small", "medium", "large", NULL};
static const char *const colours[] = {"red",    "orange", "yellow", "green", "cyan",
                                      "blue",   "purple", "pink",   "white", "black", NULL};
static const char *const shapes[] = {"circle", "square", "triangle", "diamond",
                                     "star",   "hexagon", NULL};
static const char *const numbers[] = {"zero", "one", "two",   "three", "four",
                                      "five", "six", "seven", "eight", NULL};

static int index_in(const char *w, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(w, list[i]))
            return i;
    return -1;
}

typedef struct obj {
    int id, shape, colour, size;
    int cx, cy, box[4], area, full_area;
} obj;

typedef struct scene_view {
    const setok_world_scene *s;
    cJSON *root;
    int n;
    obj o[MAX_OBJ];
} scene_view;

static int json_int(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static bool load_view(scene_view *v, const setok_world_scene *s)
{
    v->s = s;
    v->root = cJSON_Parse(setok_world_json(s));
    v->n = 0;
    if (!v->root)
        return false;
    const cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(v->root, "objects")) {
        if (v->n == MAX_OBJ)
            return false;
        obj *b = &v->o[v->n++];
        b->id = json_int(o, "id");
        b->shape = index_in(json_str(o, "shape"), shapes);
        b->colour = index_in(json_str(o, "colour"), colours);
        b->size = index_in(json_str(o, "size"), sizes);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "center");
        const cJSON *box = cJSON_GetObjectItemCaseSensitive(o, "bbox");
        if (cJSON_GetArraySize(c) != 2 || cJSON_GetArraySize(box) != 4)
            return false;
        b->cx = cJSON_GetArrayItem(c, 0)->valueint;
        b->cy = cJSON_GetArrayItem(c, 1)->valueint;
        for (int k = 0; k < 4; k++)
            b->box[k] = cJSON_GetArrayItem(box, k)->valueint;
        b->area = json_int(o, "area");
        b->full_area = json_int(o, "full_area");
        if (b->shape < 0 || b->colour < 0 || b->size < 0)
            return false;
    }
    return true;
}

static const obj *by_id(const scene_view *v, int id)
{
    for (int i = 0; i < v->n; i++)
        if (v->o[i].id == id)
            return &v->o[i];
    return NULL;
}

/* ---------------------------------------------------------------------------
 * phrases: "the [size] [colour] shape|object [on the left|...]" -> object index */

static int resolve(const scene_view *v, const char *phrase)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", phrase);
    char *w = strtok_r(buf, " ", &save);
    if (!w || strcmp(w, "the"))
        return -1;
    int size = -1, colour = -1, shape = -1;
    bool noun = false;
    while (!noun && (w = strtok_r(NULL, " ", &save))) {
        if (index_in(w, sizes) >= 0)
            size = index_in(w, sizes);
        else if (index_in(w, colours) >= 0)
            colour = index_in(w, colours);
        else if (index_in(w, shapes) >= 0 || !strcmp(w, "object"))
            shape = index_in(w, shapes), noun = true;
        else
            return -1;
    }
    const char *rest = save && *save ? save : "";
    int cand[MAX_OBJ], n = 0;
    for (int i = 0; i < v->n; i++)
        if ((size < 0 || v->o[i].size == size) && (colour < 0 || v->o[i].colour == colour)
            && (shape < 0 || v->o[i].shape == shape))
            cand[n++] = i;
    if (!noun || n == 0)
        return -1;
    if (!*rest)
        return n == 1 ? cand[0] : -1;
    /* a position word: the one candidate strictly beyond all others that way */
    int dir = !strcmp(rest, "on the left") ? 0 : !strcmp(rest, "on the right") ? 1
              : !strcmp(rest, "at the top") ? 2 : !strcmp(rest, "at the bottom") ? 3 : -1;
    if (dir < 0 || n < 2)
        return -1;
    int best = -1;
    for (int a = 0; a < n; a++) {
        bool beyond = true;
        for (int b = 0; b < n; b++) {
            const obj *p = &v->o[cand[a]], *q = &v->o[cand[b]];
            if (a == b)
                continue;
            beyond = beyond && (dir == 0 ? p->cx < q->cx : dir == 1 ? p->cx > q->cx
                                : dir == 2 ? p->cy < q->cy : p->cy > q->cy);
        }
        if (beyond)
            best = cand[a];
    }
    return best;
}

/* "[size] [colour] shape(s)|object(s)" -> how many objects match */
static int count_phrase(const scene_view *v, const char *text, bool plural)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", text);
    int size = -1, colour = -1, shape = -2;
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        size_t len = strlen(w);
        if (shape != -2)
            return -1; /* words after the noun */
        if (index_in(w, sizes) >= 0) {
            size = index_in(w, sizes);
            continue;
        }
        if (index_in(w, colours) >= 0) {
            colour = index_in(w, colours);
            continue;
        }
        if (plural) {
            if (len < 2 || w[len - 1] != 's')
                return -1;
            w[len - 1] = '\0';
        }
        shape = !strcmp(w, "object") ? -1 : index_in(w, shapes);
        if (shape < 0 && strcmp(w, "object"))
            return -1;
    }
    if (shape == -2)
        return -1;
    int n = 0;
    for (int i = 0; i < v->n; i++)
        n += (size < 0 || v->o[i].size == size) && (colour < 0 || v->o[i].colour == colour)
             && (shape < 0 || v->o[i].shape == shape);
    return n;
}

/* text between prefix and suffix, or NULL */
static const char *between(const char *text, const char *prefix, const char *suffix, char *out,
                           size_t size)
{
    size_t lp = strlen(prefix), ls = strlen(suffix), lt = strlen(text);
    if (lt < lp + ls || strncmp(text, prefix, lp) || strcmp(text + lt - ls, suffix))
        return NULL;
    snprintf(out, size, "%.*s", (int)(lt - lp - ls), text + lp);
    return out;
}

/* Recomputes the answer of one question; NULL when it cannot be parsed. */
static const char *answer_of(const scene_view *v, const char *type, const char *q)
{
    static char buf[256];
    char a[256], b[256];
    if (!strcmp(type, "colour") || !strcmp(type, "shape") || !strcmp(type, "size")) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "what %s is ", type);
        if (!between(q, prefix, "?", a, sizeof a))
            return NULL;
        int i = resolve(v, a);
        if (i < 0)
            return NULL;
        return type[1] == 'o' ? colours[v->o[i].colour] : type[1] == 'h' ? shapes[v->o[i].shape]
                                                                         : sizes[v->o[i].size];
    }
    if (!strcmp(type, "count")) {
        int n = between(q, "how many ", " are there?", a, sizeof a) ? count_phrase(v, a, true)
                                                                    : -1;
        return n >= 0 && n <= 8 ? numbers[n] : NULL;
    }
    if (!strcmp(type, "exist")) {
        if (!between(q, "is there a ", "?", a, sizeof a)
            && !between(q, "is there an ", "?", a, sizeof a))
            return NULL;
        int n = count_phrase(v, a, false);
        return n < 0 ? NULL : n ? "yes" : "no";
    }
    if (!strcmp(type, "relation")) {
        static const char *const seps[] = {" left or right of ", " above or below ",
                                           " to the left of ",   " to the right of ",
                                           " above ",            " below "};
        if (!between(q, "is ", "?", buf, sizeof buf))
            return NULL;
        for (int k = 0; k < 6; k++) {
            char *at = strstr(buf, seps[k]);
            if (!at)
                continue;
            snprintf(a, sizeof a, "%.*s", (int)(at - buf), buf);
            snprintf(b, sizeof b, "%s", at + strlen(seps[k]));
            int i = resolve(v, a), j = resolve(v, b);
            if (i < 0 || j < 0)
                return NULL;
            int dx = v->o[i].cx - v->o[j].cx, dy = v->o[i].cy - v->o[j].cy;
            bool horizontal = k == 0 || k == 2 || k == 3;
            if ((horizontal ? dx : dy) == 0)
                return NULL;
            switch (k) {
            case 0: return dx < 0 ? "left" : "right";
            case 1: return dy < 0 ? "above" : "below";
            case 2: return dx < 0 ? "yes" : "no";
            case 3: return dx > 0 ? "yes" : "no";
            case 4: return dy < 0 ? "yes" : "no";
            default: return dy > 0 ? "yes" : "no";
            }
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------
 * checks */

static bool same_scene(const setok_world_scene *a, const setok_world_scene *b)
{
    size_t n = (size_t)setok_world_width(a) * setok_world_height(a);
    return setok_world_width(a) == setok_world_width(b)
           && setok_world_height(a) == setok_world_height(b)
           && !memcmp(setok_world_rgb(a), setok_world_rgb(b), n * 3)
           && !memcmp(setok_world_labels(a), setok_world_labels(b), n)
           && !strcmp(setok_world_json(a), setok_world_json(b));
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void test_determinism(void)
{
    setok_world_scene *a = NULL, *b = NULL, *c = NULL, *ea = NULL, *eb = NULL;
    setok_error err = {0};
    CHECK(setok_world_generate(&a, 42, NULL, &err) == SETOK_OK, "seed 42: %s", err.message);
    CHECK(setok_world_generate(&b, 42, NULL, &err) == SETOK_OK, "seed 42 again");
    CHECK(setok_world_generate(&c, 43, NULL, &err) == SETOK_OK, "seed 43");
    if (!a || !b || !c)
        return;
    CHECK(same_scene(a, b), "the same seed gives identical pixels, labels and JSON");
    CHECK(memcmp(setok_world_rgb(a), setok_world_rgb(c), 128 * 128 * 3) != 0
              && strcmp(setok_world_json(a), setok_world_json(c)) != 0,
          "different seeds give different scenes");
    CHECK(setok_world_apply_edit(&ea, a, 0, &err) == SETOK_OK
              && setok_world_apply_edit(&eb, b, 0, &err) == SETOK_OK && same_scene(ea, eb),
          "edit targets are deterministic too");
    /* Pinned bytes: the same on every machine and compiler. A deliberate change
     * of the generator changes these; update them with it. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t seed = 0; seed < 8; seed++) {
        setok_world_scene *s = NULL;
        if (setok_world_generate(&s, seed, NULL, &err) != SETOK_OK)
            break;
        h = fnv1a(h, setok_world_rgb(s), 128 * 128 * 3);
        h = fnv1a(h, setok_world_labels(s), 128 * 128);
        h = fnv1a(h, (const uint8_t *)setok_world_json(s), strlen(setok_world_json(s)));
        setok_world_free(s);
    }
    printf("seeds 0..7 hash %016llx\n", (unsigned long long)h);
    CHECK(h == WORLD_GOLDEN_HASH, "seeds 0..7 hash to the pinned value (%016llx)",
          (unsigned long long)h);
    setok_world_free(a);
    setok_world_free(b);
    setok_world_free(c);
    setok_world_free(ea);
    setok_world_free(eb);
}

/* The RGB of each colour name, learned from the scenes; -1: not seen yet. */
static int palette[16][3];

static bool pixel_is(const uint8_t *px, const int rgb[3])
{
    return px[0] == rgb[0] && px[1] == rgb[1] && px[2] == rgb[2];
}

/* Masks: label k pixels all have object k's colour, one flat colour per name;
 * area, box and reference point agree with the labels. */
static int check_masks(const scene_view *v)
{
    int w = setok_world_width(v->s), h = setok_world_height(v->s), bad = 0;
    const uint8_t *rgb = setok_world_rgb(v->s), *lab = setok_world_labels(v->s);
    int count[256] = {0}, box[256][4];
    for (int k = 0; k < 256; k++)
        box[k][0] = box[k][1] = 1 << 30, box[k][2] = box[k][3] = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int k = lab[y * w + x];
            const uint8_t *px = rgb + ((size_t)y * w + x) * 3;
            if (k == 0)
                continue;
            const obj *o = by_id(v, k);
            if (!o) {
                bad++;
                continue;
            }
            int *pal = palette[o->colour];
            if (pal[0] < 0)
                pal[0] = px[0], pal[1] = px[1], pal[2] = px[2];
            bad += !pixel_is(px, pal);
            count[k]++;
            if (x < box[k][0]) box[k][0] = x;
            if (y < box[k][1]) box[k][1] = y;
            if (x + 1 > box[k][2]) box[k][2] = x + 1;
            if (y + 1 > box[k][3]) box[k][3] = y + 1;
        }
    for (int i = 0; i < v->n; i++) {
        const obj *o = &v->o[i];
        bad += count[o->id] != o->area;
        bad += memcmp(box[o->id], o->box, sizeof o->box) != 0;
        bad += lab[o->cy * w + o->cx] != o->id; /* the reference point is visible */
        bad += 2 * o->area < o->full_area;      /* at least half of it is */
    }
    return bad;
}

/* No background pixel has any object colour (run after every palette entry is known). */
static int check_background(const setok_world_scene *s)
{
    int n = setok_world_width(s) * setok_world_height(s), bad = 0;
    const uint8_t *rgb = setok_world_rgb(s), *lab = setok_world_labels(s);
    for (int p = 0; p < n; p++)
        for (int c = 0; colours[c] && !lab[p]; c++)
            bad += palette[c][0] >= 0 && pixel_is(rgb + (size_t)p * 3, palette[c]);
    return bad;
}

static void check_text(const scene_view *v, uint64_t seed)
{
    const cJSON *q;
    int asked = 0, wrong = 0, types = 0;
    cJSON_ArrayForEach(q, cJSON_GetObjectItemCaseSensitive(v->root, "qa")) {
        const char *type = json_str(q, "type"), *question = json_str(q, "question");
        const char *want = answer_of(v, type, question);
        asked++;
        if (!want || strcmp(want, json_str(q, "answer"))) {
            wrong++;
            printf("seed %llu: '%s' answered '%s', recomputed '%s'\n", (unsigned long long)seed,
                   question, json_str(q, "answer"), want ? want : "(unparsed)");
        }
        types |= (!strcmp(type, "count") ? 1 : 0) | (!strcmp(type, "exist") ? 2 : 0);
    }
    CHECK(wrong == 0 && asked > 0 && types == 3,
          "seed %llu: %d of %d answers disagree with the objects (or count/exist missing)",
          (unsigned long long)seed, wrong, asked);

    int n_ref = 0, bad_ref = 0;
    const cJSON *r, *r2;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(v->root, "referring")) {
        int i = resolve(v, json_str(r, "text"));
        bad_ref += i < 0 || v->o[i].id != json_int(r, "object");
        cJSON_ArrayForEach(r2, cJSON_GetObjectItemCaseSensitive(v->root, "referring"))
            bad_ref += r2 != r && !strcmp(json_str(r, "text"), json_str(r2, "text"));
        n_ref++;
    }
    CHECK(bad_ref == 0 && n_ref <= v->n,
          "seed %llu: %d referring texts do not single out their object", (unsigned long long)seed,
          bad_ref);
    CHECK(strlen(json_str(v->root, "caption")) > 0
              && strlen(json_str(v->root, "generation_prompt")) > 0,
          "seed %llu: caption and prompt", (unsigned long long)seed);
}

/* The changed pixels of an edit stay where its rules allow. */
static void check_edit(const scene_view *src, const scene_view *dst, const cJSON *edit,
                       uint64_t seed, int k, int *kinds_seen)
{
    static const char *const kinds[] = {"recolour", "remove", "add", "move", "resize", NULL};
    int kind = index_in(json_str(edit, "kind"), kinds), id = json_int(edit, "object");
    int w = setok_world_width(src->s), h = setok_world_height(src->s), bad = 0;
    const uint8_t *ra = setok_world_rgb(src->s), *rb = setok_world_rgb(dst->s);
    const uint8_t *la = setok_world_labels(src->s), *lb = setok_world_labels(dst->s);
    const obj *before = by_id(src, id), *after = by_id(dst, id);
    if (kind < 0 || (kind != 2 && !before) || (kind != 1 && !after)
        || (kind == 1 && after) || (kind == 2 && before)) {
        CHECK(0, "seed %llu edit %d: object %d before/after does not fit '%s'",
              (unsigned long long)seed, k, id, json_str(edit, "kind"));
        return;
    }
    kinds_seen[kind]++;
    /* the union of the object's visible boxes before and after */
    int x0 = w, y0 = h, x1 = 0, y1 = 0;
    for (int t = 0; t < 2; t++) {
        const obj *o = t ? after : before;
        if (!o)
            continue;
        x0 = o->box[0] < x0 ? o->box[0] : x0;
        y0 = o->box[1] < y0 ? o->box[1] : y0;
        x1 = o->box[2] > x1 ? o->box[2] : x1;
        y1 = o->box[3] > y1 ? o->box[3] : y1;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t p = (size_t)y * w + x;
            bool changed = memcmp(ra + p * 3, rb + p * 3, 3) || la[p] != lb[p];
            switch (kind) {
            case 0: /* recolour: exactly the object's pixels change colour, no label moves */
                bad += la[p] != lb[p] || changed != (la[p] == id)
                       || (la[p] == id && !pixel_is(rb + p * 3, palette[after->colour]));
                break;
            case 1: /* remove: only its pixels change; background or revealed objects there */
                bad += lb[p] == id || (changed && la[p] != id);
                if (la[p] == id && lb[p] == 0)
                    for (int c = 0; colours[c]; c++)
                        bad += pixel_is(rb + p * 3, palette[c]);
                break;
            default: /* add, move, resize: only inside the boxes */
                bad += changed && (x < x0 || x >= x1 || y < y0 || y >= y1);
                break;
            }
        }
    /* every other object is exactly as it was */
    for (int i = 0; i < src->n; i++) {
        const obj *a = &src->o[i], *b = by_id(dst, a->id);
        if (a->id == id)
            continue;
        bad += !b || a->shape != b->shape || a->colour != b->colour || a->size != b->size
               || a->cx != b->cx || a->cy != b->cy;
    }
    bad += dst->n != src->n + (kind == 2) - (kind == 1);
    CHECK(bad == 0, "seed %llu edit %d (%s: %s): %d wrong pixels or objects",
          (unsigned long long)seed, k, json_str(edit, "kind"), json_str(edit, "instruction"), bad);
}

static void test_scenes(const setok_world_options *opts, int first, int count, bool edits)
{
    setok_error err = {0};
    int mask_bad = 0, bg_bad = 0, occluded = 0, textured = 0, kinds_seen[5] = {0};
    int hist[MAX_OBJ + 1] = {0};
    for (int seed = first; seed < first + count; seed++) {
        setok_world_scene *s = NULL;
        if (setok_world_generate(&s, (uint64_t)seed, opts, &err) != SETOK_OK) {
            CHECK(0, "seed %d: %s", seed, err.message);
            continue;
        }
        scene_view v;
        bool parsed = load_view(&v, s);
        CHECK(parsed, "seed %d: the annotation parses with every object's fields", seed);
        if (!parsed) {
            cJSON_Delete(v.root);
            setok_world_free(s);
            continue;
        }
        hist[v.n]++;
        CHECK(json_int(v.root, "width") == setok_world_width(s)
                  && json_int(v.root, "height") == setok_world_height(s)
                  && v.n >= opts->min_objects && v.n <= opts->max_objects,
              "seed %d: size and object count (%d)", seed, v.n);
        mask_bad += check_masks(&v);
        check_text(&v, (uint64_t)seed);
        const cJSON *bg = cJSON_GetObjectItemCaseSensitive(v.root, "background");
        textured += !strcmp(json_str(bg, "kind"), "texture");
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(v.root, "objects"))
            occluded += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "occluded_by")) > 0;
        int k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(v.root, "edits")) {
            setok_world_scene *t = NULL;
            if (!edits)
                break;
            if (setok_world_apply_edit(&t, s, k, &err) != SETOK_OK) {
                CHECK(0, "seed %d edit %d: %s", seed, k, err.message);
                k++;
                continue;
            }
            scene_view tv;
            if (load_view(&tv, t)) {
                mask_bad += check_masks(&tv);
                check_edit(&v, &tv, e, (uint64_t)seed, k, kinds_seen);
            } else {
                CHECK(0, "seed %d edit %d: the target's annotation parses", seed, k);
            }
            cJSON_Delete(tv.root);
            setok_world_free(t);
            k++;
        }
        CHECK(!edits || k == setok_world_edit_count(s), "seed %d: edit count", seed);
        cJSON_Delete(v.root);
        setok_world_free(s);
    }
    CHECK(mask_bad == 0, "%d mask, area, box or visibility mismatches", mask_bad);
    /* the background check once the palette is complete */
    int known = 0;
    for (int c = 0; colours[c]; c++)
        known += palette[c][0] >= 0;
    for (int seed = first; seed < first + count; seed++) {
        setok_world_scene *s = NULL;
        if (setok_world_generate(&s, (uint64_t)seed, opts, &err) == SETOK_OK)
            bg_bad += check_background(s);
        setok_world_free(s);
    }
    CHECK(bg_bad == 0 && known == 10,
          "%d background pixels have an object colour (%d colours seen)", bg_bad, known);
    CHECK(occluded > 0 && textured > 0 && textured < count,
          "variety: %d occluded objects, %d textured backgrounds of %d", occluded, textured,
          count);
    if (edits)
        for (int k = 0; k < 5; k++)
            CHECK(kinds_seen[k] > 0, "edit kind %d was exercised", k);
    printf("%dx%d, %d scenes: objects", opts->width, opts->height, count);
    for (int n = 0; n <= opts->max_objects; n++)
        printf(" %d:%d", n, hist[n]);
    printf("; %d occluded, %d textured; edits %d/%d/%d/%d/%d\n", occluded, textured,
           kinds_seen[0], kinds_seen[1], kinds_seen[2], kinds_seen[3], kinds_seen[4]);
}

/* Pairwise-distinct palette: ten names, ten colours. */
static void test_palette(void)
{
    int dup = 0;
    for (int a = 0; colours[a]; a++)
        for (int b = a + 1; colours[b]; b++)
            dup += palette[a][0] >= 0 && !memcmp(palette[a], palette[b], sizeof palette[a]);
    CHECK(dup == 0, "%d colour names share an RGB value", dup);
}

static void test_bad_options(void)
{
    setok_world_options o;
    setok_world_scene *s = NULL;
    setok_error err = {0};
    const struct {
        int w, h, lo, hi;
        const char *what;
    } bad[] = {
        {0, 128, 1, 6, "zero width"},      {128, 0, 1, 6, "zero height"},
        {100000, 128, 1, 6, "huge width"}, {128, 1 << 30, 1, 6, "huge height"},
        {128, 128, 4, 2, "min > max"},     {128, 128, 0, 6, "min 0"},
        {128, 128, 1, 99, "max 99"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = (setok_world_options){bad[i].w, bad[i].h, bad[i].lo, bad[i].hi};
        err.message[0] = '\0';
        setok_status st = setok_world_generate(&s, 1, &o, &err);
        CHECK(st == SETOK_ERR_INPUT && !s && err.message[0], "%s gives SETOK_ERR_INPUT (%d)",
              bad[i].what, st);
    }
    setok_world_options_default(&o);
    CHECK(o.width == 128 && o.height == 128 && o.min_objects == 1 && o.max_objects == 6,
          "defaults 128 x 128, 1..6");
    CHECK(setok_world_generate(&s, 3, &o, &err) == SETOK_OK, "seed 3");
    setok_world_scene *t = NULL;
    CHECK(setok_world_apply_edit(&t, s, -1, &err) == SETOK_ERR_INPUT && !t,
          "edit -1 gives SETOK_ERR_INPUT");
    CHECK(setok_world_apply_edit(&t, s, setok_world_edit_count(s), &err) == SETOK_ERR_INPUT,
          "an edit past the end gives SETOK_ERR_INPUT: %s", err.message);
    setok_world_free(s);
}

/* ---------------------------------------------------------------------------
 * the analyser (setok_world_analyse) read back on the scenes themselves */

/* The rasterizer draws exactly an unoccluded object's labels; bad arguments are errors. */
static void test_rasterize(void)
{
    setok_world_scene *s = NULL;
    setok_error err = {0};
    uint8_t *mask = malloc(128 * 128);
    int bad = 0, checked = 0;
    for (uint64_t seed = 0; seed < 50 && mask; seed++) {
        if (setok_world_generate(&s, seed, NULL, &err) != SETOK_OK)
            break;
        scene_view v;
        if (load_view(&v, s)) {
            const cJSON *o;
            int i = 0;
            cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(v.root, "objects")) {
                const obj *b = &v.o[i++];
                if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "occluded_by")) > 0)
                    continue;
                int r = setok_world_size_radius(b->size, 128, 128), area = 0, diff = 0;
                if (setok_world_rasterize(mask, 128, 128, b->shape, b->cx, b->cy, r, &area, &err)
                    != SETOK_OK) {
                    bad++;
                    continue;
                }
                for (int p = 0; p < 128 * 128; p++)
                    diff += (mask[p] == 255) != (setok_world_labels(s)[p] == b->id);
                bad += diff != 0 || area != b->full_area;
                checked++;
            }
        }
        cJSON_Delete(v.root);
        setok_world_free(s);
    }
    CHECK(checked > 50 && bad == 0,
          "rasterized masks equal the labels of %d unoccluded objects (%d differ)", checked, bad);
    CHECK(setok_world_rasterize(mask, 128, 128, SETOK_WORLD_N_SHAPES, 5, 5, 4, NULL, &err)
              == SETOK_ERR_INPUT,
          "an unknown shape is SETOK_ERR_INPUT");
    CHECK(setok_world_rasterize(mask, 128, 128, 0, 5, 5, 0, NULL, &err) == SETOK_ERR_INPUT,
          "radius 0 is SETOK_ERR_INPUT");
    CHECK(setok_world_shape_index("star") == 4 && setok_world_colour_index("black") == 9
              && setok_world_size_index("large") == 2 && setok_world_shape_index("blob") == -1,
          "name lookups");
    CHECK(!strcmp(setok_world_colour_name(3), "green") && !setok_world_colour_name(10)
              && setok_world_size_radius(0, 128, 128) == 7
              && setok_world_size_radius(2, 128, 128) == 16,
          "vocabulary and radii");
    free(mask);
}

/* Thresholds measured on seeds 0..199 (128 x 128): every one of the 512 unoccluded objects'
 * colour, shape and size recovered (1.000), no spurious component; kept at 0.95 (0.90
 * for sizes) so a small change of the rasterizer does not break the test. */
#define ANALYSE_MIN_COLOUR 0.95
#define ANALYSE_MIN_SHAPE 0.95
#define ANALYSE_MIN_SIZE 0.90

static void test_analyse(void)
{
    setok_error err = {0};
    int objects = 0, colour_ok = 0, shape_ok = 0, size_ok = 0, spurious = 0, failures = 0;
    int confusion[SETOK_WORLD_N_SHAPES][SETOK_WORLD_N_SHAPES] = {{0}};
    for (uint64_t seed = 0; seed < N_SCENES; seed++) {
        setok_world_scene *s = NULL;
        setok_world_reading r;
        scene_view v = {0};
        if (setok_world_generate(&s, seed, NULL, &err) != SETOK_OK || !load_view(&v, s)
            || setok_world_analyse(&r, setok_world_rgb(s), 128, 128, &err) != SETOK_OK) {
            failures++;
            cJSON_Delete(v.root);
            setok_world_free(s);
            continue;
        }
        const uint8_t *labels = setok_world_labels(s);
        /* a component with no object pixel under it is a false find */
        for (int k = 0; k < r.n_components; k++) {
            bool on_object = false;
            for (int p = 0; p < 128 * 128 && !on_object; p++)
                on_object = r.components_map[p] == k + 1 && labels[p] != 0;
            spurious += !on_object;
        }
        const cJSON *o;
        int i = 0;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(v.root, "objects")) {
            const obj *b = &v.o[i++];
            if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "occluded_by")) > 0)
                continue;
            /* the component covering most of the object's pixels */
            int votes[64] = {0}, best = 0;
            for (int p = 0; p < 128 * 128; p++)
                if (labels[p] == b->id && r.components_map[p] > 0 && r.components_map[p] < 64)
                    votes[r.components_map[p]]++;
            for (int k = 1; k < 64; k++)
                best = votes[k] > votes[best] ? k : best;
            objects++;
            if (best == 0)
                continue;
            const setok_world_component *c = &r.components[best - 1];
            colour_ok += c->colour == b->colour;
            shape_ok += c->shape == b->shape;
            size_ok += c->size == b->size;
            confusion[b->shape][c->shape]++;
        }
        cJSON_Delete(v.root);
        setok_world_reading_free(&r);
        setok_world_free(s);
    }
    double n = objects > 0 ? objects : 1;
    printf("analyser on %d unoccluded objects: colour %.3f, shape %.3f, size %.3f; "
           "%d spurious components\n",
           objects, colour_ok / n, shape_ok / n, size_ok / n, spurious);
    for (int a = 0; a < SETOK_WORLD_N_SHAPES; a++)
        for (int b = 0; b < SETOK_WORLD_N_SHAPES; b++)
            if (a != b && confusion[a][b])
                printf("  %s read as %s: %d\n", setok_world_shape_name(a),
                       setok_world_shape_name(b), confusion[a][b]);
    CHECK(failures == 0, "%d scenes failed to generate or analyse: %s", failures, err.message);
    CHECK(objects >= 400, "enough unoccluded objects (%d)", objects);
    CHECK(colour_ok >= ANALYSE_MIN_COLOUR * objects, "colour recovered %.3f", colour_ok / n);
    CHECK(shape_ok >= ANALYSE_MIN_SHAPE * objects, "shape recovered %.3f", shape_ok / n);
    CHECK(size_ok >= ANALYSE_MIN_SIZE * objects, "size recovered %.3f", size_ok / n);
    CHECK(spurious == 0, "%d components found on the background", spurious);

    /* bad input, and a flat image with nothing on it */
    setok_world_reading r;
    uint8_t *flat = malloc(64 * 64 * 3);
    CHECK(setok_world_analyse(&r, flat, 32, 64, &err) == SETOK_ERR_INPUT,
          "a 32-pixel side is SETOK_ERR_INPUT");
    setok_world_reading_free(&r);
    if (flat) {
        memset(flat, 138, 64 * 64 * 3);
        CHECK(setok_world_analyse(&r, flat, 64, 64, &err) == SETOK_OK && r.n_components == 0
                  && r.background[0] == 138 && r.background_colour == -1,
              "a plain gray image has no objects");
        setok_world_reading_free(&r);
    }
    free(flat);
}

int main(void)
{
    for (int c = 0; c < 16; c++)
        palette[c][0] = -1;
    test_determinism();
    setok_world_options o;
    setok_world_options_default(&o);
    test_scenes(&o, 0, N_SCENES, true);
    o = (setok_world_options){.width = 200, .height = 96, .min_objects = 3, .max_objects = 8};
    test_scenes(&o, 1000, 60, true);
    o = (setok_world_options){.width = 64, .height = 64, .min_objects = 8, .max_objects = 8};
    test_scenes(&o, 2000, 20, false);
    test_palette();
    test_bad_options();
    test_rasterize();
    test_analyse();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
