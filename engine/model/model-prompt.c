/* model-prompt.c — how a chat model writes its prompts (model.h setok_prompt_format) and the
 * notes on what a folder leaves open. A LLaVA folder's chat template is read where
 * transformers reads it and recognised by the strings it writes: the engine interprets no
 * Jinja, so a template is accepted only when everything it can write is a piece of the
 * LLaVA-1.5 / Vicuna forms ("USER: ", "<image>\n", " ", "ASSISTANT:", the EOS token, a
 * "A chat between ..." system prompt); anything else falls back to the LLaVA v1 form, said
 * in a note. A bundle's form comes from its manifest. */
#include "model-impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "setok/config.h"

/* LLaVA-1.5's Vicuna system prompt (llava conv_vicuna_v1). */
static const char LLAVA_SYSTEM[] =
    "A chat between a curious human and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the human's questions.";

#define TEMPLATE_MAX_BYTES (1u << 20)

setok_status model_note(setok_model *m, const char *fmt, ...)
{
    char buf[SETOK_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **notes = realloc(m->notes, (size_t)(m->n_notes + 1) * sizeof *notes);
    if (!notes)
        return SETOK_ERR_NOMEM;
    m->notes = notes;
    if (!(notes[m->n_notes] = strdup(buf)))
        return SETOK_ERR_NOMEM;
    m->n_notes++;
    return SETOK_OK;
}

void model_prompt_free(setok_model *m)
{
    for (int i = 0; i < m->n_notes; i++)
        free(m->notes[i]);
    free(m->notes);
    m->notes = NULL;
    m->n_notes = 0;
    for (size_t i = 0; i < sizeof m->prompt_strings / sizeof *m->prompt_strings; i++)
        free(m->prompt_strings[i]);
    memset(m->prompt_strings, 0, sizeof m->prompt_strings);
    m->has_prompt = false;
}

/* ---------------------------------------------------------------------------
 * the template, by what it writes */

typedef struct template_scan {
    bool user, assistant, upper, colon, space, system_role, eos, image_nl, image;
    const char *unknown;   /* what it writes that is no part of the forms; NULL: nothing */
    char shown[48];        /* ... as shown in the note */
    char *system;          /* a default system prompt it writes, or NULL */
} template_scan;

static void scan_unknown(template_scan *sc, const char *s, size_t n)
{
    if (sc->unknown)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < sizeof sc->shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || c == '\t') {
            sc->shown[k++] = '\\';
            sc->shown[k++] = c == '\n' ? 'n' : 't';
        } else {
            sc->shown[k++] = c < 0x20 ? '?' : (char)c;
        }
    }
    sc->shown[k] = '\0';
    sc->unknown = sc->shown;
}

/* One string literal of an expression or a statement. */
static void scan_literal(template_scan *sc, const char *s, size_t n)
{
    static const char *const neutral[] = {"", "user", "assistant", "image", "text", "type",
                                          "role", "content", "equalto", NULL};
    for (int i = 0; neutral[i]; i++)
        if (strlen(neutral[i]) == n && !memcmp(s, neutral[i], n))
            return;
#define IS(lit) (n == sizeof(lit) - 1 && !memcmp(s, lit, n))
    if (IS("system"))
        sc->system_role = true;
    else if (IS("USER: "))
        sc->user = true;
    else if (IS("ASSISTANT:") || IS("ASSISTANT: "))
        sc->assistant = true;
    else if (IS(": "))
        sc->colon = true;
    else if (IS(" "))
        sc->space = true;
    else if (IS("<image>\n"))
        sc->image_nl = true;
    else if (IS("<image>"))
        sc->image = true;
    else if (IS("</s>"))
        sc->eos = true;
    else if (n > 16 && !memcmp(s, "A chat between ", 15)) {
        if (!sc->system)
            sc->system = strndup(s, n);
    } else
        scan_unknown(sc, s, n);
#undef IS
}

/* The literals and names inside one {{ }} or {% %}: body [s, s + n). */
static void scan_tag(template_scan *sc, const char *s, size_t n, char *buf)
{
    bool skip_next = false; /* raise_exception('message'): its text is never written */
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '\'' || c == '"') {
            size_t len = 0;
            for (i++; i < n && s[i] != c; i++) {
                if (s[i] == '\\' && i + 1 < n) {
                    char e = s[++i];
                    buf[len++] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                } else {
                    buf[len++] = s[i];
                }
            }
            i++;
            if (!skip_next)
                scan_literal(sc, buf, len);
            skip_next = false;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            size_t b = i;
            while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                             (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
                i++;
#define NAME(lit) (i - b == sizeof(lit) - 1 && !memcmp(s + b, lit, i - b))
            if (NAME("eos_token"))
                sc->eos = true;
            else if (NAME("upper"))
                sc->upper = true;
            else if (NAME("raise_exception"))
                skip_next = true;
#undef NAME
        } else {
            i++;
        }
    }
}

static bool is_blank(const char *s, size_t n, bool newlines)
{
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || s[i] == '\t' || (newlines && (s[i] == '\n' || s[i] == '\r'))))
            return false;
    return true;
}

/* The text between two tags as Jinja writes it with transformers' settings (trim_blocks,
 * lstrip_blocks) and the tags' whitespace control: prev / next are the tag kinds ('{', '%',
 * '#', or 0 at either end of the template), prev_ctl / next_ctl their '-' or '+'. */
static void scan_text(template_scan *sc, const char *s, size_t n, char prev, char prev_ctl,
                      char next, char next_ctl, bool at_start)
{
    const char *b = s, *e = s + n;
    /* Jinja drops a single newline that ends the template (keep_trailing_newline) */
    if (!next && e > b && e[-1] == '\n')
        e -= e - b >= 2 && e[-2] == '\r' ? 2 : 1;
    if (prev_ctl == '-') {
        while (b < e && is_blank(b, 1, true))
            b++;
    } else if ((prev == '%' || prev == '#') && prev_ctl != '+') {
        if (e - b >= 2 && b[0] == '\r' && b[1] == '\n')
            b += 2;
        else if (b < e && b[0] == '\n')
            b++;
    }
    if (next_ctl == '-') {
        while (e > b && is_blank(e - 1, 1, true))
            e--;
    } else if ((next == '%' || next == '#') && next_ctl != '+') {
        /* lstrip_blocks: blanks from the start of the line up to the tag */
        const char *line = e;
        while (line > s && line[-1] != '\n')
            line--;
        if ((line > s || at_start) && is_blank(line, (size_t)(e - line), false) && line >= b)
            e = line;
    }
    if (e > b)
        scan_unknown(sc, b, (size_t)(e - b));
}

/* Walks the template's tags; false when a tag is not closed. */
static bool scan_template(template_scan *sc, const char *t, size_t n)
{
    char *buf = malloc(n + 1);
    if (!buf)
        return false;
    char prev = 0, prev_ctl = 0;
    size_t pos = 0;
    bool closed = true;
    while (pos <= n) {
        const char *open = NULL;
        for (size_t i = pos; i + 1 < n; i++)
            if (t[i] == '{' && (t[i + 1] == '{' || t[i + 1] == '%' || t[i + 1] == '#')) {
                open = t + i;
                break;
            }
        size_t text_end = open ? (size_t)(open - t) : n;
        char kind = open ? open[1] : 0;
        char ctl = open && text_end + 2 < n && (t[text_end + 2] == '-' || t[text_end + 2] == '+')
                       ? t[text_end + 2] : 0;
        scan_text(sc, t + pos, text_end - pos, prev, prev_ctl, kind, ctl, pos == 0);
        if (!open)
            break;
        /* the tag's end: "}}", "%}" or "#}", outside string literals (comments have none) */
        char close = kind == '{' ? '}' : kind;
        size_t i = text_end + 2, end = 0;
        char quote = 0;
        for (; i + 1 < n; i++) {
            if (quote) {
                if (t[i] == '\\')
                    i++;
                else if (t[i] == quote)
                    quote = 0;
            } else if (kind != '#' && (t[i] == '\'' || t[i] == '"')) {
                quote = t[i];
            } else if (t[i] == close && t[i + 1] == '}') {
                end = i;
                break;
            }
        }
        if (!end) {
            closed = false;
            break;
        }
        size_t body = text_end + 2 + (ctl ? 1 : 0);
        char rctl = end > body && (t[end - 1] == '-' || t[end - 1] == '+') ? t[end - 1] : 0;
        if (kind != '#')
            scan_tag(sc, t + body, end - body - (rctl ? 1 : 0), buf);
        prev = kind;
        prev_ctl = rctl;
        pos = end + 2;
    }
    free(buf);
    return closed;
}

/* ---------------------------------------------------------------------------
 * where the template is */

static setok_status read_text(const char *path, char **out, setok_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: cannot open", path);
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
        (unsigned long long)sb.st_size > TEMPLATE_MAX_BYTES) {
        fclose(f);
        return setok_fail(err, SETOK_ERR_INPUT, "%s: not a regular file of at most %u bytes",
                          path, TEMPLATE_MAX_BYTES);
    }
    size_t n = (size_t)sb.st_size;
    char *text = malloc(n + 1);
    size_t got = text ? fread(text, 1, n, f) : 0;
    fclose(f);
    if (!text)
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    text[got] = '\0';
    if (got != n || strlen(text) != n) {
        free(text);
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s", path,
                          got != n ? "read failed" : "a NUL byte in the template");
    }
    *out = text;
    return SETOK_OK;
}

/* A "chat_template" value: a string, or transformers' list of {name, template} (its
 * "default"). *out is NULL when the value is missing or null. */
static setok_status template_value(const setok_config *cfg, char **out, setok_error *err)
{
    const char *path = setok_config_path(cfg);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(setok_config_root(cfg), "chat_template");
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return SETOK_OK;
    if (cJSON_IsArray(v)) {
        const cJSON *item, *found = NULL;
        cJSON_ArrayForEach(item, v) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
            if (cJSON_IsString(name) && !strcmp(name->valuestring, "default"))
                found = cJSON_GetObjectItemCaseSensitive(item, "template");
        }
        if (!cJSON_IsString(found))
            return setok_fail(err, SETOK_ERR_INPUT, "%s: chat_template lists no template named "
                              "'default'", path);
        v = found;
    } else if (!cJSON_IsString(v)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: chat_template must be a string or a list "
                          "of named templates", path);
    }
    if (!(*out = strdup(v->valuestring)))
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    return SETOK_OK;
}

/* dir's chat template and the file it came from (both malloc'd; NULL when it has none). */
static setok_status find_template(const char *dir, char **text, char **source, setok_error *err)
{
    static const char *const files[] = {"chat_template.json", "chat_template.jinja",
                                        "tokenizer_config.json"};
    *text = *source = NULL;
    setok_status st = SETOK_OK;
    for (size_t i = 0; i < 3 && st == SETOK_OK && !*text; i++) {
        char *path = setok_path_join_alloc(dir, files[i]);
        if (!path)
            return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", dir);
        if (setok_is_file(path) && i == 1) {
            st = read_text(path, text, err);
        } else if (setok_is_file(path)) {
            setok_config *cfg = NULL;
            st = setok_config_load(&cfg, path, err);
            if (st == SETOK_OK)
                st = template_value(cfg, text, err);
            if (st == SETOK_OK && i == 0 && !*text)
                st = setok_fail(err, SETOK_ERR_INPUT, "%s: no chat_template string", path);
            setok_config_free(cfg);
        }
        if (st == SETOK_OK && *text)
            *source = path;
        else
            free(path);
    }
    return st;
}

/* ---------------------------------------------------------------------------
 * the format */

static setok_status set_strings(setok_model *m, const char *system, const char *prefix,
                                const char *image, const char *source)
{
    const char *v[4] = {system, prefix, image, source};
    for (int i = 0; i < 4; i++) {
        free(m->prompt_strings[i]);
        m->prompt_strings[i] = v[i] ? strdup(v[i]) : NULL;
        if (v[i] && !m->prompt_strings[i])
            return SETOK_ERR_NOMEM;
    }
    m->prompt.system = m->prompt_strings[0];
    m->prompt.system_prefix = m->prompt_strings[1];
    m->prompt.image = m->prompt_strings[2];
    m->prompt.source = m->prompt_strings[3];
    m->has_prompt = true;
    return SETOK_OK;
}

static setok_status bundle_prompt(setok_model *m, setok_error *err)
{
    const setok_bundle *b = &m->bundle;
    size_t n = strlen(b->image_start) + strlen(b->image_token) + strlen(b->image_end) + 2;
    char *image = malloc(n);
    if (!image)
        return setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
    snprintf(image, n, "%s%s%s\n", b->image_start, b->image_token, b->image_end);
    m->prompt.style = SETOK_PROMPT_LLAVA_V1;
    m->prompt.name = "setokim";
    setok_status st = set_strings(m, b->system_prompt, "", image, b->manifest);
    free(image);
    return st == SETOK_OK ? SETOK_OK : setok_fail(err, st, "model: out of memory");
}

/* Why a scanned template is not one of the forms, or NULL when it is. */
static const char *unrecognised(const template_scan *sc, char *buf, size_t size)
{
    if (sc->unknown)
        snprintf(buf, size, "it writes '%s'", sc->unknown);
    else if (!(sc->user || (sc->upper && sc->colon)) || !sc->assistant)
        snprintf(buf, size, "it writes no 'USER: ' ... 'ASSISTANT:' turns");
    else if (!sc->image && !sc->image_nl)
        snprintf(buf, size, "it writes no '<image>'");
    else if (!sc->space)
        snprintf(buf, size, "it writes no ' ' after a turn");
    else
        return NULL;
    return buf;
}

setok_status model_prompt_init(setok_model *m, setok_error *err)
{
    if (m->kind == SETOK_MODEL_SETOKIM)
        return bundle_prompt(m, err);
    if (m->kind != SETOK_MODEL_LLAVA)
        return SETOK_OK;
    char *text = NULL, *source = NULL;
    setok_status st = find_template(m->dir, &text, &source, err);
    if (st != SETOK_OK)
        return st;
    template_scan sc = {0};
    char why[160];
    const char *reason = "";
    bool known = false;
    if (text && !scan_template(&sc, text, strlen(text)))
        reason = "a tag is not closed";
    else if (text)
        known = !(reason = unrecognised(&sc, why, sizeof why));
    if (known) {
        m->prompt.style = sc.eos ? SETOK_PROMPT_LLAVA_V1 : SETOK_PROMPT_LLAVA_HF;
        m->prompt.name = sc.eos ? "llava-v1" : "llava-hf";
        /* a template that upper-cases every role without singling out "system" writes
         * "SYSTEM: " before a system prompt */
        st = set_strings(m, sc.system ? sc.system : "",
                         sc.upper && !sc.user && !sc.system_role ? "SYSTEM: " : "",
                         sc.image_nl ? "<image>\n" : "<image>", source);
    } else {
        m->prompt.style = SETOK_PROMPT_LLAVA_V1;
        m->prompt.name = "llava-v1";
        st = set_strings(m, LLAVA_SYSTEM, "", "<image>\n", NULL);
        if (st == SETOK_OK && text)
            st = model_note(m, "%s: the chat template is not one this engine recognises (%s); "
                            "prompts take the LLaVA v1 form '<system> USER: <image>\\n... "
                            "ASSISTANT:' with LLaVA's Vicuna system prompt", source, reason);
        else if (st == SETOK_OK)
            st = model_note(m, "%s has no chat template (chat_template.json, "
                            "chat_template.jinja or tokenizer_config.json's chat_template); "
                            "prompts take the LLaVA v1 form '<system> USER: <image>\\n... "
                            "ASSISTANT:' with LLaVA's Vicuna system prompt", m->dir);
    }
    free(sc.system);
    free(text);
    free(source);
    return st == SETOK_OK ? SETOK_OK : setok_fail(err, st, "model: out of memory");
}

/* ---------------------------------------------------------------------------
 * image processor settings */

setok_status model_processor_notes(setok_model *m, setok_error *err)
{
    const char *dir = m->comp[SETOK_COMPONENT_VISION].path;
    setok_vit_config vc;
    setok_error ignored = {0};
    /* a tower whose config.json is broken reports that when it loads */
    if (!dir || setok_vit_preprocessor_file(dir) || setok_vit_config_load(&vc, dir, &ignored))
        return SETOK_OK;
    setok_status st = model_note(m, "%s: no processor_config.json (image_processor) or "
                                 "preprocessor_config.json; images are prepared with %s's "
                                 "defaults at the tower's %d px", dir,
                                 vc.arch == SETOK_VIT_SIGLIP ? "SiglipImageProcessor"
                                                             : "CLIPImageProcessor",
                                 vc.image_size);
    return st == SETOK_OK ? SETOK_OK : setok_fail(err, st, "model: out of memory");
}

/* ---------------------------------------------------------------------------
 * accessors */

const setok_prompt_format *setok_model_prompt_format(const setok_model *m)
{
    return m->has_prompt ? &m->prompt : NULL;
}

int setok_model_note_count(const setok_model *m)
{
    return m->n_notes;
}

const char *setok_model_note(const setok_model *m, int i)
{
    return i >= 0 && i < m->n_notes ? m->notes[i] : NULL;
}
