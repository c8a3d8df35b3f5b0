/* world-text.c — the words of the synthetic world: the annotation record of a
 * scene, with its caption, questions, referring expressions, generation
 * prompt and edit instructions.
 *
 * The language is small and regular, for a tiny language model: lower case,
 * one-word answers, one phrase pattern per thing ("the [size] colour shape
 * [position]"). A phrase names size or position only when colour and shape
 * alone would fit another object; an object no phrase singles out is never
 * asked about. Spatial words compare reference points with a margin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "world-impl.h"

enum { USE_COLOUR = 1, USE_SIZE = 2, USE_SHAPE = 4 };
enum { POS_NONE, POS_LEFT, POS_RIGHT, POS_TOP, POS_BOTTOM };

static const char *const position_words[] = {"", "on the left", "on the right", "at the top",
                                             "at the bottom"};
static const char *const number_words[] = {"zero", "one", "two", "three", "four",
                                           "five", "six", "seven", "eight"};
/* the 3 x 3 cells of the scene, row by row */
static const char *const cell_words[9] = {
    "in the top left",    "at the top",    "in the top right",
    "on the left",        "in the centre", "on the right",
    "in the bottom left", "at the bottom", "in the bottom right",
};
static const char *const bg_adjectives[WORLD_N_BG_KINDS] = {"plain", "striped", "checked",
                                                            "speckled"};
static const char *const move_words[WORLD_N_MOVES] = {
    "left", "right", "up", "down", "to the top left", "to the top right",
    "to the bottom left", "to the bottom right", "to the centre",
};

/* Spatial words need the reference points this far apart (pixels). */
static int margin(const setok_world_scene *s)
{
    int side = s->width < s->height ? s->width : s->height;
    return side / 16 > 4 ? side / 16 : 4;
}

static int cell_of(const setok_world_scene *s, const world_object *o)
{
    return (o->cy * 3 / s->height) * 3 + o->cx * 3 / s->width;
}

static bool matches(const world_object *a, const world_object *b, int use)
{
    return (!(use & USE_COLOUR) || a->colour == b->colour)
           && (!(use & USE_SIZE) || a->size == b->size)
           && (!(use & USE_SHAPE) || a->shape == b->shape);
}

static const char *article(const char *word)
{
    return strchr("aeiou", word[0]) ? "an" : "a";
}

/* "[size ]colour shape" with the attributes in use; "object" stands for the shape. */
static void noun_phrase(char *out, size_t size, const world_object *o, int use)
{
    snprintf(out, size, "%s%s%s%s%s", use & USE_SIZE ? world_size_names[o->size] : "",
             use & USE_SIZE ? " " : "", use & USE_COLOUR ? world_colour_names[o->colour] : "",
             use & USE_COLOUR ? " " : "", use & USE_SHAPE ? world_shape_names[o->shape] : "object");
}

/* Whether objects[i] is alone among the objects that match it on `use`;
 * else the position word (POS_*) that sets it apart from all of them, or -1. */
static int distinguish(const setok_world_scene *s, int i, int use)
{
    const world_object *o = &s->objects[i];
    int m = margin(s);
    bool left = true, right = true, top = true, bottom = true, alone = true;
    for (int j = 0; j < s->n_objects; j++) {
        const world_object *b = &s->objects[j];
        if (j == i || !matches(o, b, use))
            continue;
        alone = false;
        left = left && o->cx + m <= b->cx;
        right = right && o->cx >= b->cx + m;
        top = top && o->cy + m <= b->cy;
        bottom = bottom && o->cy >= b->cy + m;
    }
    return alone ? POS_NONE : left ? POS_LEFT : right ? POS_RIGHT : top ? POS_TOP
                                            : bottom ? POS_BOTTOM : -1;
}

/* "the ..." singling out objects[i] without the attribute `without` (0: all
 * may be used); false when nothing unique can be said. */
static bool describe(const setok_world_scene *s, int i, int without, char *out, size_t size)
{
    int base = (USE_COLOUR | USE_SHAPE) & ~without;
    int with_size = without & USE_SIZE ? base : base | USE_SIZE;
    int tries[4][2] = {{base, 0}, {with_size, 0}, {base, 1}, {with_size, 1}};
    for (int t = 0; t < 4; t++) {
        int pos = distinguish(s, i, tries[t][0]);
        if (pos < 0 || (pos != POS_NONE && !tries[t][1]))
            continue;
        char noun[96];
        noun_phrase(noun, sizeof noun, &s->objects[i], tries[t][0]);
        snprintf(out, size, "the %s%s%s", noun, pos ? " " : "", position_words[pos]);
        return true;
    }
    return false;
}

bool world_refer(const setok_world_scene *s, int i, char *out, size_t size)
{
    return describe(s, i, 0, out, size);
}

/* Appends "a, b and c" items one at a time. */
static void list_append(char *out, size_t size, const char *item, int k, int n)
{
    size_t len = strlen(out);
    const char *sep = k == 0 ? "" : k == n - 1 ? " and " : ", ";
    snprintf(out + len, size - len, "%s%s", sep, item);
}

static void background_phrase(const setok_world_scene *s, char *out, size_t size)
{
    snprintf(out, size, "a %s %s background", bg_adjectives[s->bg.kind],
             world_bg_colour_names[s->bg.colour]);
}

static void shuffle(int *v, int n, world_rng *r)
{
    for (int i = n - 1; i > 0; i--) {
        int j = world_rng_int(r, 0, i), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* Appends a question unless it was already asked. */
static void add_qa(cJSON *qa, const char *type, const char *question, const char *answer)
{
    const cJSON *old;
    cJSON_ArrayForEach(old, qa) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(old, "question"));
        if (text && !strcmp(text, question))
            return;
    }
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "type", type);
    cJSON_AddStringToObject(q, "question", question);
    cJSON_AddStringToObject(q, "answer", answer);
    cJSON_AddItemToArray(qa, q);
}

/* ---------------------------------------------------------------------------
 * caption and prompt */

static void caption(const setok_world_scene *s, world_rng *r, char *out, size_t size)
{
    int order[SETOK_WORLD_MAX_OBJECTS], n = s->n_objects;
    for (int i = 0; i < n; i++)
        order[i] = i;
    /* left to right (then top to bottom): the order a reader scans */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0; j--) {
            const world_object *a = &s->objects[order[j - 1]], *b = &s->objects[order[j]];
            if (a->cx < b->cx || (a->cx == b->cx && a->cy <= b->cy))
                break;
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    char list[768] = "", bg[64], item[96];
    for (int k = 0; k < n; k++) {
        const world_object *o = &s->objects[order[k]];
        noun_phrase(item, sizeof item, o, USE_SIZE | USE_COLOUR | USE_SHAPE);
        char with_article[112];
        snprintf(with_article, sizeof with_article, "%s %s", article(item), item);
        list_append(list, sizeof list, with_article, k, n);
    }
    background_phrase(s, bg, sizeof bg);
    switch (world_rng_int(r, 0, 3)) {
    case 0:
        snprintf(out, size, "%s %s on %s: %s.", number_words[n], n == 1 ? "shape" : "shapes", bg,
                 list);
        break;
    case 1:
        snprintf(out, size, "there %s %s %s on %s: %s.", n == 1 ? "is" : "are", number_words[n],
                 n == 1 ? "shape" : "shapes", bg, list);
        break;
    case 2:
        snprintf(out, size, "%s on %s.", list, bg);
        break;
    default:
        snprintf(out, size, "%s with %s.", bg, list);
        break;
    }
    /* at most two occlusions, named when both objects can be */
    int said = 0;
    for (int i = 0; i < n && said < 2; i++)
        for (int j = i + 1; j < n && said < 2; j++) {
            char front[128], back[128];
            if (!(s->stats[i].occluders & (1u << j)) || !world_refer(s, j, front, sizeof front)
                || !world_refer(s, i, back, sizeof back))
                continue;
            size_t len = strlen(out);
            snprintf(out + len, size - len, " %s is in front of %s.", front, back);
            said++;
        }
}

static void generation_prompt(const setok_world_scene *s, char *out, size_t size)
{
    char list[1024] = "", bg[64], item[96], placed[160];
    for (int i = 0; i < s->n_objects; i++) {
        const world_object *o = &s->objects[i];
        noun_phrase(item, sizeof item, o, USE_SIZE | USE_COLOUR | USE_SHAPE);
        snprintf(placed, sizeof placed, "%s %s %s", article(item), item, cell_words[cell_of(s, o)]);
        list_append(list, sizeof list, placed, i, s->n_objects);
    }
    background_phrase(s, bg, sizeof bg);
    snprintf(out, size, "%s, on %s", list, bg);
}

/* ---------------------------------------------------------------------------
 * questions */

static void attribute_questions(const setok_world_scene *s, world_rng *r, cJSON *qa)
{
    static const struct {
        int without;
        const char *type;
    } kinds[] = {{USE_COLOUR, "colour"}, {USE_SHAPE, "shape"}, {USE_SIZE, "size"}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int order[SETOK_WORLD_MAX_OBJECTS], asked = 0;
        for (int i = 0; i < s->n_objects; i++)
            order[i] = i;
        shuffle(order, s->n_objects, r);
        for (int t = 0; t < s->n_objects && asked < 2; t++) {
            const world_object *o = &s->objects[order[t]];
            char ref[128], q[192];
            if (!describe(s, order[t], kinds[k].without, ref, sizeof ref))
                continue;
            snprintf(q, sizeof q, "what %s is %s?", kinds[k].type, ref);
            add_qa(qa, kinds[k].type, q,
                   kinds[k].without == USE_COLOUR ? world_colour_names[o->colour]
                   : kinds[k].without == USE_SHAPE ? world_shape_names[o->shape]
                                                   : world_size_names[o->size]);
            asked++;
        }
    }
}

static int count_matching(const setok_world_scene *s, const world_object *probe, int use)
{
    int n = 0;
    for (int i = 0; i < s->n_objects; i++)
        n += matches(&s->objects[i], probe, use);
    return n;
}

/* A probe object: half the time a present object's attributes, else random ones. */
static world_object random_probe(const setok_world_scene *s, world_rng *r)
{
    if (world_rng_int(r, 0, 1))
        return s->objects[world_rng_int(r, 0, s->n_objects - 1)];
    return (world_object){.shape = world_rng_int(r, 0, WORLD_N_SHAPES - 1),
                          .colour = world_rng_int(r, 0, WORLD_N_COLOURS - 1),
                          .size = world_rng_int(r, 0, WORLD_N_SIZES - 1)};
}

static void count_questions(const setok_world_scene *s, world_rng *r, cJSON *qa)
{
    /* what is counted: everything, a colour, a shape, colour and shape, a size */
    int forms[5] = {0, USE_COLOUR, USE_SHAPE, USE_COLOUR | USE_SHAPE, USE_SIZE};
    shuffle(forms, 5, r);
    for (int k = 0; k < 3; k++) {
        world_object probe = random_probe(s, r);
        char noun[96], q[160];
        noun_phrase(noun, sizeof noun, &probe, forms[k]);
        snprintf(q, sizeof q, "how many %ss are there?", noun);
        add_qa(qa, "count", q, number_words[count_matching(s, &probe, forms[k])]);
    }
}

static void exist_questions(const setok_world_scene *s, world_rng *r, cJSON *qa)
{
    static const int forms[4] = {USE_COLOUR | USE_SHAPE, USE_SHAPE, USE_COLOUR,
                                 USE_SIZE | USE_COLOUR | USE_SHAPE};
    for (int k = 0; k < 2; k++) {
        /* the first about a present object, the second about a random probe */
        world_object probe = k == 0 ? s->objects[world_rng_int(r, 0, s->n_objects - 1)]
                                    : random_probe(s, r);
        int use = forms[world_rng_int(r, 0, 3)];
        char noun[96], q[160];
        noun_phrase(noun, sizeof noun, &probe, use);
        snprintf(q, sizeof q, "is there %s %s?", article(noun), noun);
        add_qa(qa, "exist", q, count_matching(s, &probe, use) ? "yes" : "no");
    }
}

static void relation_questions(const setok_world_scene *s, world_rng *r, cJSON *qa)
{
    int pairs[SETOK_WORLD_MAX_OBJECTS * SETOK_WORLD_MAX_OBJECTS], n_pairs = 0, m = margin(s);
    for (int i = 0; i < s->n_objects; i++)
        for (int j = 0; j < s->n_objects; j++)
            if (i != j)
                pairs[n_pairs++] = i * SETOK_WORLD_MAX_OBJECTS + j;
    shuffle(pairs, n_pairs, r);
    int asked = 0;
    for (int p = 0; p < n_pairs && asked < 3; p++) {
        int i = pairs[p] / SETOK_WORLD_MAX_OBJECTS, j = pairs[p] % SETOK_WORLD_MAX_OBJECTS;
        const world_object *a = &s->objects[i], *b = &s->objects[j];
        char ra[128], rb[128], q[320];
        bool horizontal = abs(a->cx - b->cx) >= m, vertical = abs(a->cy - b->cy) >= m;
        if ((!horizontal && !vertical) || !world_refer(s, i, ra, sizeof ra)
            || !world_refer(s, j, rb, sizeof rb))
            continue;
        if (horizontal && vertical)
            horizontal = world_rng_int(r, 0, 1);
        /* first word holds when a is left of / above b */
        bool first = horizontal ? a->cx < b->cx : a->cy < b->cy;
        const char *w1 = horizontal ? "left" : "above", *w2 = horizontal ? "right" : "below";
        switch (world_rng_int(r, 0, 2)) {
        case 0: /* yes / no, about either word */
        case 1: {
            bool ask_first = world_rng_int(r, 0, 1);
            if (horizontal)
                snprintf(q, sizeof q, "is %s to the %s of %s?", ra, ask_first ? w1 : w2, rb);
            else
                snprintf(q, sizeof q, "is %s %s %s?", ra, ask_first ? w1 : w2, rb);
            add_qa(qa, "relation", q, ask_first == first ? "yes" : "no");
            break;
        }
        default:
            if (horizontal)
                snprintf(q, sizeof q, "is %s left or right of %s?", ra, rb);
            else
                snprintf(q, sizeof q, "is %s above or below %s?", ra, rb);
            add_qa(qa, "relation", q, first ? w1 : w2);
            break;
        }
        asked++;
    }
}

/* ---------------------------------------------------------------------------
 * edits */

static void edit_instruction(const setok_world_scene *s, const world_edit *e, world_rng *r,
                             char *out, size_t size)
{
    char ref[128] = "", noun[96];
    if (e->index >= 0)
        world_refer(s, e->index, ref, sizeof ref);
    int form = world_rng_int(r, 0, 2); /* three wordings of each kind */
    switch (e->kind) {
    case WORLD_EDIT_RECOLOUR: {
        static const char *const verbs[3] = {"make", "paint", "turn"};
        snprintf(out, size, "%s %s %s", verbs[form], ref, world_colour_names[e->colour]);
        break;
    }
    case WORLD_EDIT_REMOVE: {
        static const char *const verbs[3] = {"remove", "delete", "take away"};
        snprintf(out, size, "%s %s", verbs[form], ref);
        break;
    }
    case WORLD_EDIT_ADD: {
        static const char *const verbs[3] = {"add", "put", "draw"};
        noun_phrase(noun, sizeof noun, &e->after, USE_SIZE | USE_COLOUR | USE_SHAPE);
        snprintf(out, size, "%s %s %s %s", verbs[form], article(noun), noun,
                 cell_words[cell_of(s, &e->after)]);
        break;
    }
    case WORLD_EDIT_MOVE:
        /* directions may also "shift"; places are always "move ... to" */
        snprintf(out, size, "%s %s %s", form == 2 && e->move <= WORLD_MOVE_DOWN ? "shift" : "move",
                 ref, move_words[e->move]);
        break;
    default: {
        bool bigger = e->size > s->objects[e->index].size;
        if (form == 0)
            snprintf(out, size, "make %s %s", ref, bigger ? "bigger" : "smaller");
        else if (form == 1)
            snprintf(out, size, "resize %s to be %s", ref, bigger ? "bigger" : "smaller");
        else
            snprintf(out, size, "%s %s", bigger ? "enlarge" : "shrink", ref);
        break;
    }
    }
}

static cJSON *edit_json(const setok_world_scene *s, const world_edit *e, world_rng *r)
{
    char text[256];
    edit_instruction(s, e, r, text, sizeof text);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", world_edit_kind_names[e->kind]);
    cJSON_AddStringToObject(o, "instruction", text);
    cJSON_AddNumberToObject(o, "object", e->after.id);
    switch (e->kind) {
    case WORLD_EDIT_RECOLOUR:
        cJSON_AddStringToObject(o, "colour", world_colour_names[e->colour]);
        break;
    case WORLD_EDIT_ADD:
        cJSON_AddStringToObject(o, "shape", world_shape_names[e->after.shape]);
        cJSON_AddStringToObject(o, "colour", world_colour_names[e->after.colour]);
        cJSON_AddStringToObject(o, "size", world_size_names[e->after.size]);
        break;
    case WORLD_EDIT_RESIZE:
        cJSON_AddStringToObject(o, "size", world_size_names[e->size]);
        break;
    default:
        break;
    }
    if (e->kind == WORLD_EDIT_ADD || e->kind == WORLD_EDIT_MOVE) {
        int c[2] = {e->after.cx, e->after.cy};
        cJSON_AddItemToObject(o, "center", cJSON_CreateIntArray(c, 2));
    }
    return o;
}

/* ---------------------------------------------------------------------------
 * the record */

static cJSON *object_json(const setok_world_scene *s, int i)
{
    const world_object *o = &s->objects[i];
    const world_object_stats *st = &s->stats[i];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "id", o->id);
    cJSON_AddStringToObject(j, "shape", world_shape_names[o->shape]);
    cJSON_AddStringToObject(j, "colour", world_colour_names[o->colour]);
    cJSON_AddStringToObject(j, "size", world_size_names[o->size]);
    int c[2] = {o->cx, o->cy}, box[4] = {st->x0, st->y0, st->x1, st->y1};
    cJSON_AddItemToObject(j, "center", cJSON_CreateIntArray(c, 2));
    cJSON_AddItemToObject(j, "bbox", cJSON_CreateIntArray(box, 4));
    cJSON_AddNumberToObject(j, "area", st->area);
    cJSON_AddNumberToObject(j, "full_area", st->full_area);
    cJSON *occ = cJSON_AddArrayToObject(j, "occluded_by");
    for (int k = 0; k < s->n_objects; k++)
        if (st->occluders & (1u << k))
            cJSON_AddItemToArray(occ, cJSON_CreateNumber(s->objects[k].id));
    return j;
}

bool world_annotate(setok_world_scene *s)
{
    world_rng r;
    world_rng_seed(&r, world_mix(s->key, 0x7e47ull));
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return false;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed); /* exact beyond 2^53 */
    cJSON_AddRawToObject(root, "seed", seed);
    cJSON_AddNumberToObject(root, "width", s->width);
    cJSON_AddNumberToObject(root, "height", s->height);
    if (s->path_len > 0)
        cJSON_AddItemToObject(root, "edit_path", cJSON_CreateIntArray(s->path, s->path_len));

    cJSON *bg = cJSON_AddObjectToObject(root, "background");
    cJSON_AddStringToObject(bg, "kind", s->bg.kind == WORLD_BG_PLAIN ? "plain" : "texture");
    cJSON_AddStringToObject(bg, "colour", world_bg_colour_names[s->bg.colour]);
    if (s->bg.kind != WORLD_BG_PLAIN)
        cJSON_AddStringToObject(bg, "pattern", world_bg_kind_names[s->bg.kind]);

    cJSON *objects = cJSON_AddArrayToObject(root, "objects");
    for (int i = 0; i < s->n_objects; i++)
        cJSON_AddItemToArray(objects, object_json(s, i));

    char text[2048];
    caption(s, &r, text, sizeof text);
    cJSON_AddStringToObject(root, "caption", text);

    cJSON *qa = cJSON_AddArrayToObject(root, "qa");
    attribute_questions(s, &r, qa);
    count_questions(s, &r, qa);
    exist_questions(s, &r, qa);
    relation_questions(s, &r, qa);

    cJSON *refs = cJSON_AddArrayToObject(root, "referring");
    for (int i = 0; i < s->n_objects; i++) {
        if (!world_refer(s, i, text, sizeof text))
            continue;
        cJSON *ref = cJSON_CreateObject();
        cJSON_AddNumberToObject(ref, "object", s->objects[i].id);
        cJSON_AddStringToObject(ref, "text", text);
        cJSON_AddItemToArray(refs, ref);
    }

    generation_prompt(s, text, sizeof text);
    cJSON_AddStringToObject(root, "generation_prompt", text);

    cJSON *edits = cJSON_AddArrayToObject(root, "edits");
    for (int e = 0; e < s->n_edits; e++)
        cJSON_AddItemToArray(edits, edit_json(s, &s->edits[e], &r));

    free(s->json);
    s->json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s->json != NULL;
}
