/* bundle.c — reads and validates a SETOKIM bundle's setokim.json (bundle.h):
 * the format and version, the component folders (relative, inside the bundle,
 * present), the special tokens, the system prompt, the image size, the
 * vision feature layer, and the optional training domain and model card.
 * The pipelines open components through it only. */
#include "setok/bundle.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "io-private.h"
#include "setok/config.h"

static const char *const component_names[] = {
    "vision", "setok", "llm", "projector_in", "projector_out",
    "mapper", "unet", "vae", "scheduler", "mask_decoder", "projector_seg",
};
_Static_assert(sizeof component_names / sizeof *component_names == SETOK_BUNDLE_COMPONENT_COUNT,
               "one name per setok_bundle_component");

const char *setok_bundle_component_name(setok_bundle_component c)
{
    return (unsigned)c < SETOK_BUNDLE_COMPONENT_COUNT ? component_names[c] : "?";
}

/* dir + "/" + name, malloc'd; NULL when out of memory. */
static char *join(const char *dir, const char *name)
{
    size_t d = strlen(dir), n = d + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", dir, d && dir[d - 1] == '/' ? "" : "/", name);
    return p;
}

bool setok_bundle_is_bundle(const char *dir)
{
    char *path = join(dir, SETOK_BUNDLE_MANIFEST);
    struct stat sb;
    bool yes = path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    free(path);
    return yes;
}

void setok_bundle_free(setok_bundle *b)
{
    if (!b)
        return;
    free(b->dir);
    free(b->manifest);
    for (int i = 0; i < SETOK_BUNDLE_COMPONENT_COUNT; i++)
        free(b->components[i]);
    free(b->image_token);
    free(b->image_start);
    free(b->image_end);
    free(b->system_prompt);
    for (int i = 0; i < b->n_visual_tokens; i++)
        free(b->visual_tokens[i]);
    free(b->visual_tokens);
    free(b->segment_token);
    free(b->domain_kind);
    free(b->domain_description);
    free(b->domain_suggest);
    free(b->card_summary);
    for (int i = 0; i < b->n_metrics; i++) {
        free(b->metrics[i].name);
        free(b->metrics[i].label);
        free(b->metrics[i].unit);
    }
    free(b->metrics);
    for (int i = 0; i < b->n_questions; i++) {
        free(b->questions[i].kind);
        free(b->questions[i].example);
    }
    free(b->questions);
    memset(b, 0, sizeof *b);
}

static setok_status copy_string(char **out, const char *s, const setok_bundle *b,
                                setok_error *err)
{
    if (!(*out = strdup(s)))
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", b->manifest);
    return SETOK_OK;
}

/* key, when present, must be a JSON object. */
static setok_status check_object(const setok_config *cfg, const char *key, bool required,
                                 setok_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(setok_config_root(cfg), key);
    if (!item || cJSON_IsNull(item)) {
        if (!required)
            return SETOK_OK;
        return setok_fail(err, SETOK_ERR_INPUT, "%s: missing required key '%s'",
                          setok_config_path(cfg), key);
    }
    if (!cJSON_IsObject(item))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: key '%s' must be an object, got %s",
                          setok_config_path(cfg), key, setok_io_json_type(item));
    return SETOK_OK;
}

/* A component path as written: non-empty, relative, no ".." segment. */
static setok_status check_relative(const setok_bundle *b, const char *name, const char *rel,
                                   setok_error *err)
{
    char shown[256];
    setok_io_printable(shown, sizeof shown, rel);
    if (!rel[0])
        return setok_fail(err, SETOK_ERR_INPUT, "%s: components.%s: the path is empty",
                          b->manifest, name);
    if (rel[0] == '/')
        return setok_fail(err, SETOK_ERR_INPUT, "%s: components.%s: '%s' must be a path "
                          "relative to the bundle", b->manifest, name, shown);
    for (const char *s = rel; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return setok_fail(err, SETOK_ERR_INPUT, "%s: components.%s: '%s' leaves the bundle "
                              "('..' is not allowed)", b->manifest, name, shown);
        s += n;
        while (*s == '/')
            s++;
    }
    return SETOK_OK;
}

/* The component folder must exist and, links resolved, lie inside the bundle. */
static setok_status check_folder(const setok_bundle *b, const char *name, const char *rel,
                                 const char *path, setok_error *err)
{
    char shown[256];
    setok_io_printable(shown, sizeof shown, rel);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: components.%s: the folder '%s' does not "
                          "exist (%s)", b->manifest, name, shown, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: components.%s: '%s' is not a folder",
                          b->manifest, name, shown);
    char *root = realpath(b->dir, NULL), *real = realpath(path, NULL);
    setok_status st = SETOK_OK;
    if (!root || !real) {
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: components.%s: cannot resolve '%s': %s",
                        b->manifest, name, shown, strerror(errno));
    } else {
        size_t n = strlen(root);
        bool inside = !strncmp(real, root, n) && (real[n] == '/' || (n == 1 && root[0] == '/'));
        if (!inside)
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: components.%s: '%s' resolves outside "
                            "the bundle", b->manifest, name, shown);
    }
    free(root);
    free(real);
    return st;
}

static setok_status read_components(setok_bundle *b, const setok_config *cfg, setok_error *err)
{
    setok_status st = check_object(cfg, "components", true, err);
    for (int i = 0; st == SETOK_OK && i < SETOK_BUNDLE_COMPONENT_COUNT; i++) {
        char key[64];
        snprintf(key, sizeof key, "components.%s", component_names[i]);
        const char *rel = NULL;
        st = setok_config_string_or(cfg, key, NULL, &rel, err);
        if (st != SETOK_OK || !rel)
            continue;
        st = check_relative(b, component_names[i], rel, err);
        if (st == SETOK_OK && !(b->components[i] = join(b->dir, rel)))
            st = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", b->manifest);
        if (st == SETOK_OK)
            st = check_folder(b, component_names[i], rel, b->components[i], err);
    }
    return st;
}

static setok_status read_special_tokens(setok_bundle *b, const setok_config *cfg,
                                        setok_error *err)
{
    static const char *const keys[] = {"image", "image_start", "image_end"};
    static const char *const dflt[] = {"<image>", "[Img]", "[/Img]"};
    char **out[] = {&b->image_token, &b->image_start, &b->image_end};
    setok_status st = check_object(cfg, "special_tokens", false, err);
    for (int i = 0; st == SETOK_OK && i < 3; i++) {
        char key[64];
        const char *s = NULL;
        snprintf(key, sizeof key, "special_tokens.%s", keys[i]);
        st = setok_config_string_or(cfg, key, dflt[i], &s, err);
        if (st == SETOK_OK && !s[0])
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: key '%s' is empty", b->manifest, key);
        if (st == SETOK_OK)
            st = copy_string(out[i], s, b, err);
    }
    return st;
}

/* "visual_tokens": an optional array of 1..SETOK_BUNDLE_MAX_VISUAL_TOKENS non-empty strings. */
static setok_status read_visual_tokens(setok_bundle *b, const setok_config *cfg,
                                       setok_error *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(setok_config_root(cfg), "visual_tokens");
    if (!arr || cJSON_IsNull(arr))
        return SETOK_OK;
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (n < 1 || n > SETOK_BUNDLE_MAX_VISUAL_TOKENS)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: visual_tokens must be an array of 1 to %d "
                          "token strings, got %s", b->manifest, SETOK_BUNDLE_MAX_VISUAL_TOKENS,
                          cJSON_IsArray(arr) ? "an array of another length"
                                             : setok_io_json_type(arr));
    if (!(b->visual_tokens = calloc((size_t)n, sizeof *b->visual_tokens)))
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", b->manifest);
    for (int i = 0; i < n; i++) {
        const cJSON *item = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsString(item) || !item->valuestring[0])
            return setok_fail(err, SETOK_ERR_INPUT, "%s: visual_tokens[%d] must be a non-empty "
                              "string", b->manifest, i);
        setok_status st = copy_string(&b->visual_tokens[i], item->valuestring, b, err);
        if (st != SETOK_OK)
            return st;
        b->n_visual_tokens = i + 1;
    }
    return SETOK_OK;
}

/* key (dotted): a string copied into *out; when not required, absent leaves *out NULL.
 * Present strings must not be empty. */
static setok_status read_text(setok_bundle *b, const setok_config *cfg, const char *key,
                              bool required, char **out, setok_error *err)
{
    const char *s = NULL;
    setok_status st = required ? setok_config_string(cfg, key, &s, err)
                               : setok_config_string_or(cfg, key, NULL, &s, err);
    if (st != SETOK_OK || !s)
        return st;
    if (!s[0])
        return setok_fail(err, SETOK_ERR_INPUT, "%s: key '%s' is empty", b->manifest, key);
    return copy_string(out, s, b, err);
}

/* "domain": {"kind", "description", "suggest"}; kind required when domain is given. */
static setok_status read_domain(setok_bundle *b, const setok_config *cfg, setok_error *err)
{
    setok_status st = check_object(cfg, "domain", false, err);
    if (st != SETOK_OK || !setok_config_has(cfg, "domain"))
        return st;
    st = read_text(b, cfg, "domain.kind", true, &b->domain_kind, err);
    if (st == SETOK_OK)
        st = read_text(b, cfg, "domain.description", false, &b->domain_description, err);
    if (st == SETOK_OK)
        st = read_text(b, cfg, "domain.suggest", false, &b->domain_suggest, err);
    return st;
}

/* card.KEY: an optional array of objects, at most SETOK_BUNDLE_MAX_CARD_ITEMS; its length in *n. */
static setok_status card_array(setok_bundle *b, const setok_config *cfg, const char *key,
                               const cJSON **arr, int *n, setok_error *err)
{
    const cJSON *card = cJSON_GetObjectItemCaseSensitive(setok_config_root(cfg), "card");
    *arr = card ? cJSON_GetObjectItemCaseSensitive(card, key) : NULL;
    *n = 0;
    if (!*arr || cJSON_IsNull(*arr))
        return SETOK_OK;
    *n = cJSON_IsArray(*arr) ? cJSON_GetArraySize(*arr) : -1;
    if (*n < 0 || *n > SETOK_BUNDLE_MAX_CARD_ITEMS)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: card.%s must be an array of at most %d "
                          "objects, got %s", b->manifest, key, SETOK_BUNDLE_MAX_CARD_ITEMS,
                          *n < 0 ? setok_io_json_type(*arr) : "a longer array");
    for (int i = 0; i < *n; i++)
        if (!cJSON_IsObject(cJSON_GetArrayItem(*arr, i)))
            return setok_fail(err, SETOK_ERR_INPUT, "%s: card.%s[%d] must be an object",
                              b->manifest, key, i);
    return SETOK_OK;
}

/* field of card.KEY[i]: a non-empty string (or, when optional, absent: ""). */
static setok_status card_text(setok_bundle *b, const cJSON *item, const char *key, int i,
                              const char *field, bool optional, char **out, setok_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, field);
    if (optional && (!v || cJSON_IsNull(v)))
        return copy_string(out, "", b, err);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return setok_fail(err, SETOK_ERR_INPUT, "%s: card.%s[%d].%s must be a non-empty string",
                          b->manifest, key, i, field);
    return copy_string(out, v->valuestring, b, err);
}

/* "card": {"summary", "metrics": [{name, label, value, unit}], "questions": [{kind, example}]} */
static setok_status read_card(setok_bundle *b, const setok_config *cfg, setok_error *err)
{
    setok_status st = check_object(cfg, "card", false, err);
    if (st != SETOK_OK || !setok_config_has(cfg, "card"))
        return st;
    st = read_text(b, cfg, "card.summary", false, &b->card_summary, err);
    const cJSON *arr = NULL;
    int n = 0;
    if (st == SETOK_OK)
        st = card_array(b, cfg, "metrics", &arr, &n, err);
    if (st == SETOK_OK && n > 0 && !(b->metrics = calloc((size_t)n, sizeof *b->metrics)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", b->manifest);
    for (int i = 0; st == SETOK_OK && i < n; i++) {
        const cJSON *item = cJSON_GetArrayItem(arr, i);
        setok_bundle_metric *m = &b->metrics[i];
        b->n_metrics = i + 1;
        st = card_text(b, item, "metrics", i, "name", false, &m->name, err);
        if (st == SETOK_OK)
            st = card_text(b, item, "metrics", i, "label", false, &m->label, err);
        if (st == SETOK_OK)
            st = card_text(b, item, "metrics", i, "unit", true, &m->unit, err);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, "value");
        if (st == SETOK_OK && (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)))
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: card.metrics[%d].value must be a number",
                            b->manifest, i);
        if (st == SETOK_OK)
            m->value = v->valuedouble;
        if (st == SETOK_OK && m->unit[0] && strcmp(m->unit, "fraction") && strcmp(m->unit, "ms"))
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: card.metrics[%d].unit must be "
                            "\"fraction\" or \"ms\"", b->manifest, i);
    }
    if (st == SETOK_OK)
        st = card_array(b, cfg, "questions", &arr, &n, err);
    if (st == SETOK_OK && n > 0 && !(b->questions = calloc((size_t)n, sizeof *b->questions)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", b->manifest);
    for (int i = 0; st == SETOK_OK && i < n; i++) {
        const cJSON *item = cJSON_GetArrayItem(arr, i);
        b->n_questions = i + 1;
        st = card_text(b, item, "questions", i, "kind", false, &b->questions[i].kind, err);
        if (st == SETOK_OK)
            st = card_text(b, item, "questions", i, "example", false, &b->questions[i].example,
                           err);
    }
    return st;
}

setok_status setok_bundle_load(setok_bundle *b, const char *dir, setok_error *err)
{
    memset(b, 0, sizeof *b);
    if (!(b->dir = strdup(dir)) || !(b->manifest = join(dir, SETOK_BUNDLE_MANIFEST)))
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", dir);
    setok_config *cfg = NULL;
    setok_status st = setok_config_load(&cfg, b->manifest, err);
    if (st != SETOK_OK)
        return st;
    const char *format = NULL, *prompt = NULL;
    int64_t version = 0;
    st = setok_config_string(cfg, "format", &format, err);
    if (st == SETOK_OK && strcmp(format, "setokim")) {
        char shown[64];
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: format is '%s', expected 'setokim'",
                        b->manifest, setok_io_printable(shown, sizeof shown, format));
    }
    if (st == SETOK_OK)
        st = setok_config_int(cfg, "version", &version, err);
    if (st == SETOK_OK && version != SETOK_BUNDLE_VERSION)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: version %lld is not supported (this engine "
                        "reads version %d)", b->manifest, (long long)version,
                        SETOK_BUNDLE_VERSION);
    b->version = (int)version;
    if (st == SETOK_OK)
        st = read_components(b, cfg, err);
    if (st == SETOK_OK && setok_config_has(cfg, "image_size"))
        st = setok_config_int_in(cfg, "image_size", true, 1, 1 << 16, &b->image_size, err);
    b->vision_feature_layer = -1;
    if (st == SETOK_OK)
        st = setok_config_int_in(cfg, "vision_feature_layer", false, -1024, 1024,
                                 &b->vision_feature_layer, err);
    if (st == SETOK_OK)
        st = read_special_tokens(b, cfg, err);
    if (st == SETOK_OK)
        st = setok_config_string_or(cfg, "system_prompt", "", &prompt, err);
    if (st == SETOK_OK)
        st = copy_string(&b->system_prompt, prompt, b, err);
    if (st == SETOK_OK)
        st = read_visual_tokens(b, cfg, err);
    const char *seg = NULL;
    if (st == SETOK_OK)
        st = setok_config_string_or(cfg, "segment_token", "", &seg, err);
    if (st == SETOK_OK && seg[0])
        st = copy_string(&b->segment_token, seg, b, err);
    if (st == SETOK_OK)
        st = read_domain(b, cfg, err);
    if (st == SETOK_OK)
        st = read_card(b, cfg, err);
    setok_config_free(cfg);
    return st;
}

setok_status setok_bundle_require(const setok_bundle *b, setok_bundle_component c,
                                  const char *purpose, const char **path, setok_error *err)
{
    *path = (unsigned)c < SETOK_BUNDLE_COMPONENT_COUNT ? b->components[c] : NULL;
    if (*path)
        return SETOK_OK;
    return setok_fail(err, SETOK_ERR_INPUT, "%s: no '%s' component, which %s needs (add "
                      "components.%s)", b->manifest, setok_bundle_component_name(c), purpose,
                      setok_bundle_component_name(c));
}
