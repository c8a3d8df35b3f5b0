/* hf-json.c — reads a Hugging Face tokenizer.json into a setok_text_tokenizer: the BPE model
 * (vocab, merges, unk, byte_fallback, fuse_unk, end_of_word_suffix), added tokens, the normalizer
 * (Prepend, Replace, NFC, Lowercase and their Sequence), the Metaspace pre-tokenizer or CLIP's
 * Split + ByteLevel, a TemplateProcessing or RobertaProcessing post-processor and the decoder
 * chain. Anything else is refused by name rather than silently mis-tokenized. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/json.h"
#include "tokenizer-impl.h"

bool tok_json_id(const cJSON *v, int32_t *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < TOK_MAX_ID) ||
        v->valuedouble != (double)(int32_t)v->valuedouble) {
        return false;
    }
    *out = (int32_t)v->valuedouble;
    return true;
}

static bool json_bool(const cJSON *obj, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *json_type(const cJSON *obj)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

/* A required string member. */
static setok_status json_string(const setok_text_tokenizer *tok, const cJSON *obj, const char *what,
                                const char *key, const char **out, setok_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s.%s must be a string", tok->path, what,
                          key);
    }
    *out = v->valuestring;
    return SETOK_OK;
}

static setok_status load_model(setok_text_tokenizer *tok, const cJSON *model, setok_error *err)
{
    if (!cJSON_IsObject(model)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: 'model' must be an object", tok->path);
    }
    const char *type = json_type(model);
    if (*type && strcmp(type, "BPE") != 0) {
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: model type '%s' is not supported "
                          "(only BPE)", tok->path, type);
    }
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    if (cJSON_IsString(prefix) && prefix->valuestring[0]) {
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: model.continuing_subword_prefix is "
                          "not supported", tok->path);
    }
    const cJSON *suffix = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
    if (cJSON_IsString(suffix) && suffix->valuestring[0]) {
        tok->eow_suffix = tok_strndup(suffix->valuestring, strlen(suffix->valuestring));
        if (!tok->eow_suffix) {
            return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
        }
    }
    tok->byte_fallback = json_bool(model, "byte_fallback", false);
    tok->fuse_unk = json_bool(model, "fuse_unk", false);
    tok->ignore_merges = json_bool(model, "ignore_merges", false);

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: model.vocab must be an object", tok->path);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, vocab) {
        int32_t id;
        if (!tok_json_id(item, &id)) {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: model.vocab['%s'] must be an integer id "
                              "in [0, %d)", tok->path, item->string, TOK_MAX_ID);
        }
        setok_status st = tok_piece_set(tok, id, item->string, strlen(item->string), err);
        if (st != SETOK_OK) {
            return st;
        }
        tok->pieces[id].in_model = true;
    }
    setok_status st = tok_vocab_index(tok, err);
    if (st != SETOK_OK) {
        return st;
    }

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    tok->unk_id = -1;
    if (cJSON_IsString(unk)) {
        tok->unk_id = tok_vocab_find(tok, unk->valuestring, strlen(unk->valuestring));
        if (tok->unk_id < 0) {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: model.unk_token '%s' is not in the "
                              "vocab", tok->path, unk->valuestring);
        }
    }

    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: model.merges must be an array", tok->path);
    }
    st = tok_merges_init(tok, (size_t)cJSON_GetArraySize(merges), err);
    if (st != SETOK_OK) {
        return st;
    }
    tok_buf joined = {0};
    int32_t rank = 0;
    cJSON_ArrayForEach(item, merges) {
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (cJSON_IsString(item)) {
            const char *sp = strchr(item->valuestring, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                a = item->valuestring, na = (size_t)(sp - a), b = sp + 1, nb = strlen(b);
            }
        } else if (cJSON_IsArray(item) && cJSON_GetArraySize(item) == 2 &&
                   cJSON_IsString(item->child) && cJSON_IsString(item->child->next)) {
            a = item->child->valuestring, na = strlen(a);
            b = item->child->next->valuestring, nb = strlen(b);
        }
        if (!a) {
            free(joined.data);
            return setok_fail(err, SETOK_ERR_INPUT, "%s: model.merges[%d] must be \"a b\" or "
                              "[a, b]", tok->path, (int)rank);
        }
        int32_t ia = tok_vocab_find(tok, a, na), ib = tok_vocab_find(tok, b, nb);
        joined.len = 0;
        if (!tok_buf_append(&joined, a, na) || !tok_buf_append(&joined, b, nb)) {
            free(joined.data);
            return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
        }
        int32_t ir = tok_vocab_find(tok, joined.data, joined.len);
        if (ia < 0 || ib < 0 || ir < 0) {
            setok_fail(err, SETOK_ERR_INPUT, "%s: model.merges[%d] ('%.*s' + '%.*s') uses a token "
                       "missing from the vocab", tok->path, (int)rank, (int)na, a, (int)nb, b);
            free(joined.data);
            return SETOK_ERR_INPUT;
        }
        tok_merge_add(tok, ia, ib, rank, ir);
        rank++;
    }
    free(joined.data);
    return SETOK_OK;
}

static setok_status load_added(setok_text_tokenizer *tok, const cJSON *added, setok_error *err)
{
    if (!added || cJSON_IsNull(added)) {
        return SETOK_OK;
    }
    if (!cJSON_IsArray(added)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: added_tokens must be an array", tok->path);
    }
    int n = cJSON_GetArraySize(added);
    tok->added = calloc((size_t)n + 1, sizeof *tok->added);
    if (!tok->added) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
        const char *content = NULL;
        setok_status st = json_string(tok, item, "added_tokens[]", "content", &content, err);
        if (st != SETOK_OK) {
            return st;
        }
        int32_t id_value;
        if (!tok_json_id(id, &id_value) || !content[0]) {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: added token '%s' needs an integer id "
                              "and non-empty content", tok->path, content);
        }
        tok_added *a = &tok->added[tok->n_added++];
        a->id = id_value;
        a->special = json_bool(item, "special", false);
        a->single_word = json_bool(item, "single_word", false);
        a->lstrip = json_bool(item, "lstrip", false);
        a->rstrip = json_bool(item, "rstrip", false);
        a->normalized = json_bool(item, "normalized", !a->special);
        st = tok_piece_set(tok, a->id, content, strlen(content), err);
        if (st != SETOK_OK) {
            return st;
        }
        tok->pieces[a->id].special = a->special;
        a->content = tok_strndup(content, strlen(content));
        if (!a->content) {
            return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
        }
        a->len = (uint32_t)strlen(content);
    }
    return SETOK_OK;
}

static setok_status add_norm(setok_text_tokenizer *tok, const cJSON *n, setok_error *err)
{
    const char *type = json_type(n);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list)) {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: normalizer Sequence needs 'normalizers'",
                              tok->path);
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, list) {
            setok_status st = add_norm(tok, item, err);
            if (st != SETOK_OK) {
                return st;
            }
        }
        return SETOK_OK;
    }
    tok_norm_step step = {0};
    const char *a = NULL, *b = "";
    setok_status st = SETOK_OK;
    if (!strcmp(type, "Prepend")) {
        step.op = TOK_NORM_PREPEND;
        st = json_string(tok, n, "normalizer Prepend", "prepend", &a, err);
    } else if (!strcmp(type, "NFC")) {
        step.op = TOK_NORM_NFC;
        a = "";
    } else if (!strcmp(type, "Lowercase")) {
        step.op = TOK_NORM_LOWERCASE;
        a = "";
    } else if (!strcmp(type, "Replace") &&
               cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(n, "pattern"),
                                                "Regex")) {
        /* the one regex Replace tokenizers use in practice: runs of whitespace (CLIP) */
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        step.op = TOK_NORM_WS_RUNS;
        st = json_string(tok, pat, "normalizer Replace.pattern", "Regex", &a, err);
        if (st == SETOK_OK && strcmp(a, "\\s+") != 0) {
            return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: Replace with the Regex pattern "
                              "'%s' is not supported (only \\s+)", tok->path, a);
        }
        if (st == SETOK_OK) {
            st = json_string(tok, n, "normalizer Replace", "content", &b, err);
        }
    } else if (!strcmp(type, "Replace")) {
        step.op = TOK_NORM_REPLACE;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        st = json_string(tok, pat, "normalizer Replace.pattern", "String", &a, err);
        if (st == SETOK_OK) {
            st = json_string(tok, n, "normalizer Replace", "content", &b, err);
        }
        if (st == SETOK_OK && !a[0]) {
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: Replace pattern is empty", tok->path);
        }
    } else {
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported",
                          tok->path, type);
    }
    if (st != SETOK_OK) {
        return st;
    }
    tok_norm_step *p = realloc(tok->norm, (size_t)(tok->n_norm + 1) * sizeof *p);
    if (!p) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    tok->norm = p;
    step.a = tok_strndup(a, strlen(a));
    step.b = tok_strndup(b, strlen(b));
    tok->norm[tok->n_norm++] = step;
    if (!step.a || !step.b) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    return SETOK_OK;
}

static setok_status metaspace_fields(setok_text_tokenizer *tok, const cJSON *m, char **replacement,
                                     int *prepend, setok_error *err)
{
    const char *rep = "\xE2\x96\x81";
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "replacement");
    if (cJSON_IsString(r)) {
        rep = r->valuestring;
    }
    uint32_t cp;
    if (!rep[0] || tok_utf8_next(rep, strlen(rep), &cp) != strlen(rep)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: Metaspace replacement must be one character",
                          tok->path);
    }
    *prepend = json_bool(m, "add_prefix_space", true) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(m, "prepend_scheme");
    if (cJSON_IsString(ps)) {
        if (!strcmp(ps->valuestring, "always")) {
            *prepend = TOK_PREPEND_ALWAYS;
        } else if (!strcmp(ps->valuestring, "first")) {
            *prepend = TOK_PREPEND_FIRST;
        } else if (!strcmp(ps->valuestring, "never")) {
            *prepend = TOK_PREPEND_NEVER;
        } else {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: unknown Metaspace prepend_scheme '%s'",
                              tok->path, ps->valuestring);
        }
    }
    *replacement = tok_strndup(rep, strlen(rep));
    return *replacement ? SETOK_OK : setok_fail(err, SETOK_ERR_NOMEM, "out of memory");
}

/* Split with a known pattern (behavior Removed, invert: the matches are the words). */
static setok_status load_split(setok_text_tokenizer *tok, const cJSON *pre, setok_error *err)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pre, "pattern");
    const cJSON *regex = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *behavior = cJSON_GetObjectItemCaseSensitive(pre, "behavior");
    int kind = cJSON_IsString(regex) ? tok_split_pattern_kind(regex->valuestring) : TOK_SPLIT_NONE;
    if (kind == TOK_SPLIT_NONE) {
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: pre_tokenizer Split with pattern '%s' "
                          "is not supported (only CLIP's)", tok->path,
                          cJSON_IsString(regex) ? regex->valuestring : "(not a regex)");
    }
    if (!cJSON_IsString(behavior) || strcmp(behavior->valuestring, "Removed") != 0 ||
        !json_bool(pre, "invert", false) || tok->pre_pattern != TOK_SPLIT_NONE) {
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: pre_tokenizer Split is supported "
                          "only once, with behavior Removed and invert true", tok->path);
    }
    tok->pre_pattern = kind;
    return SETOK_OK;
}

static setok_status load_pre(setok_text_tokenizer *tok, const cJSON *pre, setok_error *err)
{
    if (!pre || cJSON_IsNull(pre)) {
        return SETOK_OK;
    }
    const char *type = json_type(pre);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
        const cJSON *item;
        cJSON_ArrayForEach(item, list) {
            setok_status st = load_pre(tok, item, err);
            if (st != SETOK_OK) {
                return st;
            }
        }
        if (tok->pre_metaspace && (tok->pre_bytelevel || tok->pre_pattern)) {
            return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: Metaspace combined with other "
                              "pre-tokenizers is not supported", tok->path);
        }
        return SETOK_OK;
    }
    if (!strcmp(type, "Split")) {
        return load_split(tok, pre, err);
    }
    if (!strcmp(type, "ByteLevel")) {
        if (json_bool(pre, "add_prefix_space", true) || tok->pre_bytelevel) {
            return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: pre_tokenizer ByteLevel is "
                              "supported once, with add_prefix_space false", tok->path);
        }
        tok->pre_bytelevel = true;
        tok->pre_bytelevel_regex = json_bool(pre, "use_regex", true);
        return SETOK_OK;
    }
    if (strcmp(type, "Metaspace") != 0 || tok->pre_metaspace) {
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported "
                          "(only Metaspace, ByteLevel and CLIP's Split)", tok->path, type);
    }
    tok->pre_metaspace = true;
    tok->pre_split = json_bool(pre, "split", true);
    return metaspace_fields(tok, pre, &tok->pre_replacement, &tok->pre_prepend, err);
}

static setok_status add_dec(setok_text_tokenizer *tok, const cJSON *d, setok_error *err)
{
    const char *type = json_type(d);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(list)) {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: decoder Sequence needs 'decoders'",
                              tok->path);
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, list) {
            setok_status st = add_dec(tok, item, err);
            if (st != SETOK_OK) {
                return st;
            }
        }
        return SETOK_OK;
    }
    tok_dec_step step = {0};
    const char *a = "", *b = "";
    setok_status st = SETOK_OK;
    if (!strcmp(type, "Replace")) {
        step.op = TOK_DEC_REPLACE;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(d, "pattern");
        st = json_string(tok, pat, "decoder Replace.pattern", "String", &a, err);
        if (st == SETOK_OK) {
            st = json_string(tok, d, "decoder Replace", "content", &b, err);
        }
        if (st == SETOK_OK && !a[0]) {
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: Replace pattern is empty", tok->path);
        }
    } else if (!strcmp(type, "ByteFallback")) {
        step.op = TOK_DEC_BYTE_FALLBACK;
        tok->dec_byte_fallback = true;
    } else if (!strcmp(type, "Fuse")) {
        step.op = TOK_DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        step.op = TOK_DEC_STRIP;
        st = json_string(tok, d, "decoder Strip", "content", &a, err);
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(d, "stop");
        int32_t n_start = 0, n_stop = 0;
        bool counts = (!start || tok_json_id(start, &n_start)) &&
                      (!stop || tok_json_id(stop, &n_stop));
        step.start = n_start;
        step.stop = n_stop;
        uint32_t cp;
        if (st == SETOK_OK &&
            (!a[0] || tok_utf8_next(a, strlen(a), &cp) != strlen(a) || !counts)) {
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: decoder Strip needs one character and "
                            "non-negative counts", tok->path);
        }
    } else if (!strcmp(type, "ByteLevel")) {
        step.op = TOK_DEC_BYTELEVEL;
        tok->dec_bytelevel = true;
    } else if (!strcmp(type, "Metaspace")) {
        step.op = TOK_DEC_METASPACE;
        char *rep = NULL;
        st = metaspace_fields(tok, d, &rep, &step.prepend, err);
        step.a = rep;
    } else {
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: decoder '%s' is not supported",
                          tok->path, type);
    }
    if (st != SETOK_OK) {
        free(step.a);
        return st;
    }
    tok_dec_step *p = realloc(tok->dec, (size_t)(tok->n_dec + 1) * sizeof *p);
    if (!p) {
        free(step.a);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    tok->dec = p;
    if (!step.a) {
        step.a = tok_strndup(a, strlen(a));
    }
    step.b = tok_strndup(b, strlen(b));
    tok->dec[tok->n_dec++] = step;
    if (!step.a || !step.b) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    return SETOK_OK;
}

/* The ids of one special token of a TemplateProcessing. */
static setok_status template_ids(setok_text_tokenizer *tok, const cJSON *specials, const char *name,
                                 int32_t **ids, int *n, setok_error *err)
{
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(sp, "ids");
    if (!cJSON_IsArray(list)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: post_processor.special_tokens has no ids "
                          "for '%s'", tok->path, name);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, list) {
        int32_t id;
        if (!tok_json_id(item, &id)) {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: special token '%s' has a bad id",
                              tok->path, name);
        }
        int32_t *p = realloc(*ids, (size_t)(*n + 1) * sizeof *p);
        if (!p) {
            return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
        }
        *ids = p;
        p[(*n)++] = id;
    }
    return SETOK_OK;
}

static setok_status load_post(setok_text_tokenizer *tok, const cJSON *post, setok_error *err)
{
    if (!post || cJSON_IsNull(post)) {
        return SETOK_OK;
    }
    const char *type = json_type(post);
    if (!strcmp(type, "RobertaProcessing")) {
        /* one sequence: cls, the text, sep; each given as [token, id] */
        const char *keys[2] = {"cls", "sep"};
        int32_t **lists[2] = {&tok->post_prefix, &tok->post_suffix};
        int *counts[2] = {&tok->n_post_prefix, &tok->n_post_suffix};
        for (int k = 0; k < 2; k++) {
            const cJSON *pair = cJSON_GetObjectItemCaseSensitive(post, keys[k]);
            int32_t id;
            if (!cJSON_IsArray(pair) || !tok_json_id(cJSON_GetArrayItem(pair, 1), &id)) {
                return setok_fail(err, SETOK_ERR_INPUT, "%s: post_processor.%s must be "
                                  "[token, id]", tok->path, keys[k]);
            }
            *lists[k] = malloc(sizeof **lists[k]);
            if (!*lists[k]) {
                return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
            }
            (*lists[k])[0] = id;
            *counts[k] = 1;
        }
        return SETOK_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0) {
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: post_processor '%s' is not supported",
                          tok->path, type);
    }
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
    if (!cJSON_IsArray(single)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: post_processor.single must be an array",
                          tok->path);
    }
    bool seen_sequence = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) {
            seen_sequence = true;
            continue;
        }
        const char *name = NULL;
        setok_status st = json_string(tok, sp, "post_processor SpecialToken", "id", &name, err);
        if (st == SETOK_OK) {
            st = seen_sequence ? template_ids(tok, specials, name, &tok->post_suffix,
                                              &tok->n_post_suffix, err)
                               : template_ids(tok, specials, name, &tok->post_prefix,
                                              &tok->n_post_prefix, err);
        }
        if (st != SETOK_OK) {
            return st;
        }
    }
    return SETOK_OK;
}

setok_status tok_hf_load(setok_text_tokenizer *tok, const char *text, size_t len, setok_error *err)
{
    cJSON *root = NULL;
    setok_status parsed = setok_json_parse(text, len, tok->path, SETOK_JSON_TOKENIZER_MAX_VALUES,
                                           &root, err);
    if (parsed != SETOK_OK) {
        return parsed;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return setok_fail(err, SETOK_ERR_INPUT, "%s: the top level must be a JSON object",
                          tok->path);
    }
    /* Ids may leave holes, but not many: the piece table is as long as the largest id. */
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    size_t entries = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(model, "vocab")) +
                     (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root,
                                                                                 "added_tokens"));
    tok->max_id = entries < (TOK_MAX_ID - 1024) / 2 ? (int32_t)(2 * entries + 1024) : TOK_MAX_ID;
    tok->kind = TOK_KIND_HF_BPE;
    setok_status st = load_model(tok, model, err);
    if (st == SETOK_OK) {
        st = load_added(tok, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err);
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (st == SETOK_OK && norm && !cJSON_IsNull(norm)) {
        st = add_norm(tok, norm, err);
    }
    if (st == SETOK_OK) {
        st = load_pre(tok, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err);
    }
    if (st == SETOK_OK) {
        st = load_post(tok, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), err);
    }
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (st == SETOK_OK && dec && !cJSON_IsNull(dec)) {
        st = add_dec(tok, dec, err);
    }
    cJSON_Delete(root);
    if (st != SETOK_OK) {
        return st;
    }
    /* Added tokens may extend the id range; trim and check the post-processor's ids. */
    while (tok->n_pieces > 0 && !tok->pieces[tok->n_pieces - 1].text) {
        tok->n_pieces--;
    }
    for (int i = 0; i < tok->n_post_prefix + tok->n_post_suffix; i++) {
        int32_t id = i < tok->n_post_prefix ? tok->post_prefix[i]
                                            : tok->post_suffix[i - tok->n_post_prefix];
        if (id >= tok->n_pieces || !tok->pieces[id].text) {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: post_processor uses id %d, which no "
                              "token has", tok->path, (int)id);
        }
    }
    /* Normalized added tokens are matched against normalized text. */
    for (int i = 0; i < tok->n_added; i++) {
        tok_added *a = &tok->added[i];
        if (!a->normalized || tok->n_norm == 0) {
            continue;
        }
        tok_buf b = {0};
        st = tok_hf_normalize(tok, a->content, a->len, &b);
        if (st != SETOK_OK) {
            return setok_fail(err, st, "%s: out of memory", tok->path);
        }
        free(a->content);
        a->content = b.data;
        a->len = (uint32_t)b.len;
        /* tokenizers decodes a normalized added token in its normalized form. */
        tok_piece *p = &tok->pieces[a->id];
        free(p->surface);
        p->surface = tok_strndup(b.data, b.len);
        p->surface_len = a->len;
        if (!p->surface) {
            return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
        }
    }
    tok->bos_id = tok->n_post_prefix > 0 ? tok->post_prefix[0] : tok_vocab_find(tok, "<s>", 3);
    tok->eos_id = tok_vocab_find(tok, "</s>", 4);
    if (tok->eos_id < 0 && tok->n_post_suffix == 1) {
        tok->eos_id = tok->post_suffix[0]; /* RobertaProcessing's sep (CLIP's <|endoftext|>) */
    }
    return SETOK_OK;
}
