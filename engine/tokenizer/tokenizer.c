/* tokenizer.c — the public tokenizer API: loading a folder or file, encode/decode dispatch to
 * the tokenizer.json and tokenizer.model front ends, and the streaming decoder (decodes a window
 * of ids and emits it once it no longer ends in an unfinished character; a tokenizer.json
 * byte-fallback run is emitted when it ends, since tokenizers decodes it as a whole). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer-impl.h"

/* The largest real tokenizer.json is a few tens of MB. */
#define TOK_MAX_FILE_BYTES ((size_t)256 << 20)

static setok_status read_file(const char *path, char **data, size_t *len, setok_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: cannot open", path);
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
        (uint64_t)sb.st_size > TOK_MAX_FILE_BYTES) {
        fclose(f);
        return setok_fail(err, SETOK_ERR_INPUT, "%s: not a regular file of at most 256 MiB", path);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        free(buf);
        return setok_fail(err, SETOK_ERR_RUNTIME, "%s: read failed", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return SETOK_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

setok_status setok_text_tokenizer_load(setok_text_tokenizer **out, const char *path,
                                       setok_error *err)
{
    if (!out || !path) {
        return setok_fail(err, SETOK_ERR_INPUT, "tokenizer: no path given");
    }
    *out = NULL;
    setok_text_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    }
    struct stat sb;
    size_t n = strlen(path);
    tok->path = malloc(n + sizeof "/tokenizer.model");
    if (!tok->path) {
        free(tok);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    }
    strcpy(tok->path, path);
    bool clip_files = false;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        sprintf(tok->path, "%s/tokenizer.json", path);
        if (stat(tok->path, &sb) != 0) {
            sprintf(tok->path, "%s/tokenizer.model", path);
            if (stat(tok->path, &sb) != 0 && tok_clip_files_present(path)) {
                sprintf(tok->path, "%s/vocab.json", path);
                clip_files = true;
            }
        }
    }
    char *data = NULL;
    size_t len = 0;
    setok_status st = SETOK_OK;
    if (clip_files) {
        st = tok_clip_files_json(path, &data, err);
        len = data ? strlen(data) : 0;
    } else {
        st = read_file(tok->path, &data, &len, err);
    }
    if (st == SETOK_OK) {
        st = ends_with(tok->path, ".model") ? tok_spm_load(tok, (const uint8_t *)data, len, err)
                                            : tok_hf_load(tok, data, len, err);
    }
    free(data);
    if (st != SETOK_OK) {
        setok_text_tokenizer_free(tok);
        return st;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_ids[b] = tok_vocab_find(tok, name, 6);
    }
    *out = tok;
    return SETOK_OK;
}

void setok_text_tokenizer_free(setok_text_tokenizer *tok)
{
    if (tok) {
        tok_release(tok);
        free(tok);
    }
}

void setok_text_tokenizer_buffer_free(void *buffer)
{
    free(buffer);
}

static bool push_all(tok_ids *v, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        if (!tok_ids_push(v, ids[i])) {
            return false;
        }
    }
    return true;
}

setok_status setok_text_tokenizer_encode(const setok_text_tokenizer *tok, const char *text,
                                         size_t len, bool add_special_tokens, int32_t **ids,
                                         size_t *n_ids, setok_error *err)
{
    if (!tok || (!text && len) || !ids || !n_ids) {
        return setok_fail(err, SETOK_ERR_INPUT, "tokenizer encode: missing argument");
    }
    *ids = NULL;
    *n_ids = 0;
    tok_ids out = {0};
    tok_scratch s = {0};
    bool hf = tok->kind == TOK_KIND_HF_BPE;
    setok_status st = SETOK_OK;
    if (add_special_tokens && !(hf ? push_all(&out, tok->post_prefix, tok->n_post_prefix)
                                   : tok->bos_id < 0 || tok_ids_push(&out, tok->bos_id))) {
        st = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    if (st == SETOK_OK) {
        st = hf ? tok_hf_encode(tok, text ? text : "", len, &out, &s, err)
                : tok_spm_encode(tok, text ? text : "", len, &out, &s, err);
    }
    if (st == SETOK_OK && add_special_tokens && hf &&
        !push_all(&out, tok->post_suffix, tok->n_post_suffix)) {
        st = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    tok_scratch_free(&s);
    if (st != SETOK_OK) {
        free(out.data);
        return st;
    }
    if (!out.data && !(out.data = malloc(sizeof *out.data))) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    *ids = out.data;
    *n_ids = out.len;
    return SETOK_OK;
}

static bool valid_id(const setok_text_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_pieces && tok->pieces[id].text;
}

static setok_status decode_window(const setok_text_tokenizer *tok, const int32_t *ids, size_t n,
                                  bool *at_start, tok_buf *out, setok_error *err)
{
    return tok->kind == TOK_KIND_HF_BPE ? tok_hf_decode(tok, ids, n, at_start, out, err)
                                        : tok_spm_decode(tok, ids, n, at_start, out, err);
}

setok_status setok_text_tokenizer_decode(const setok_text_tokenizer *tok, const int32_t *ids,
                                         size_t n_ids, bool skip_special_tokens, char **text,
                                         setok_error *err)
{
    if (!tok || (!ids && n_ids) || !text) {
        return setok_fail(err, SETOK_ERR_INPUT, "tokenizer decode: missing argument");
    }
    *text = NULL;
    int32_t *kept = malloc((n_ids + 1) * sizeof *kept);
    if (!kept) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0) {
            free(kept);
            return setok_fail(err, SETOK_ERR_INPUT, "%s: id %d at position %zu is negative",
                              tok->path, (int)ids[i], i);
        }
        /* a model's vocabulary may have rows no token names (llava-1.5: 32064 rows, 62 of
         * them empty): they decode to nothing, as in tokenizers */
        if (valid_id(tok, ids[i]) && !(skip_special_tokens && tok->pieces[ids[i]].special)) {
            kept[n++] = ids[i];
        }
    }
    tok_buf out = {0};
    bool at_start = true;
    setok_status st = decode_window(tok, kept, n, &at_start, &out, err);
    free(kept);
    if (st != SETOK_OK) {
        free(out.data);
        return st;
    }
    *text = out.data;
    return SETOK_OK;
}

int32_t setok_text_tokenizer_token_to_id(const setok_text_tokenizer *tok, const char *token)
{
    if (!tok || !token) {
        return -1;
    }
    size_t n = strlen(token);
    for (int i = 0; i < tok->n_added; i++) {
        const tok_piece *p = &tok->pieces[tok->added[i].id];
        if (p->len == n && memcmp(p->text, token, n) == 0) {
            return tok->added[i].id;
        }
    }
    return tok_vocab_find(tok, token, n);
}

const char *setok_text_tokenizer_id_to_token(const setok_text_tokenizer *tok, int32_t id)
{
    return tok && valid_id(tok, id) ? tok->pieces[id].text : NULL;
}

int32_t setok_text_tokenizer_vocab_size(const setok_text_tokenizer *tok)
{
    return tok ? tok->n_pieces : 0;
}

int32_t setok_text_tokenizer_bos_id(const setok_text_tokenizer *tok)
{
    return tok ? tok->bos_id : -1;
}

int32_t setok_text_tokenizer_eos_id(const setok_text_tokenizer *tok)
{
    return tok ? tok->eos_id : -1;
}

int32_t setok_text_tokenizer_unk_id(const setok_text_tokenizer *tok)
{
    return tok ? tok->unk_id : -1;
}

bool setok_text_tokenizer_is_special(const setok_text_tokenizer *tok, int32_t id)
{
    return tok && valid_id(tok, id) && tok->pieces[id].special;
}

bool setok_text_tokenizer_adds_prefix_space(const setok_text_tokenizer *tok)
{
    if (!tok) {
        return false;
    }
    if (tok->kind != TOK_KIND_HF_BPE) {
        return tok->add_dummy_prefix;
    }
    for (int i = 0; i < tok->n_norm; i++) {
        if (tok->norm[i].op == TOK_NORM_PREPEND) {
            return true;
        }
    }
    return tok->pre_metaspace && tok->pre_prepend != TOK_PREPEND_NEVER;
}

// ----------------------------------------------------------------------------
// streaming decoder

struct setok_text_stream {
    const setok_text_tokenizer *tok;
    bool skip_special, at_start;
    tok_ids window; /* ids not yet emitted */
    tok_buf text;
};

setok_status setok_text_stream_new(setok_text_stream **out, const setok_text_tokenizer *tok,
                                   bool skip_special_tokens, setok_error *err)
{
    if (!out || !tok) {
        return setok_fail(err, SETOK_ERR_INPUT, "token stream: missing argument");
    }
    *out = calloc(1, sizeof **out);
    if (!*out) {
        return setok_fail(err, SETOK_ERR_NOMEM, "token stream: out of memory");
    }
    (*out)->tok = tok;
    (*out)->skip_special = skip_special_tokens;
    (*out)->at_start = true;
    return SETOK_OK;
}

void setok_text_stream_free(setok_text_stream *stream)
{
    if (stream) {
        free(stream->window.data);
        free(stream->text.data);
        free(stream);
    }
}

static setok_status stream_emit(setok_text_stream *s, const char **text, setok_error *err)
{
    setok_status st = decode_window(s->tok, s->window.data, s->window.len, &s->at_start,
                                    &s->text, err);
    if (st != SETOK_OK) {
        return st;
    }
    s->window.len = 0;
    *text = s->text.data;
    return SETOK_OK;
}

setok_status setok_text_stream_push(setok_text_stream *s, int32_t id, const char **text,
                                    setok_error *err)
{
    if (!s || !text) {
        return setok_fail(err, SETOK_ERR_INPUT, "token stream: missing argument");
    }
    *text = "";
    const setok_text_tokenizer *tok = s->tok;
    if (id < 0) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: id %d is negative", tok->path, (int)id);
    }
    if (!valid_id(tok, id) || (s->skip_special && tok->pieces[id].special)) {
        return SETOK_OK;
    }
    if (!tok_ids_push(&s->window, id)) {
        return setok_fail(err, SETOK_ERR_NOMEM, "token stream: out of memory");
    }
    if (tok->pieces[id].byte >= 0 && tok->dec_byte_fallback) {
        /* tokenizers' ByteFallback decodes a whole run of byte pieces at once (all of it
         * becomes U+FFFD when any part is not UTF-8): hold the run until it ends */
        return SETOK_OK;
    }
    if (tok->pieces[id].byte >= 0 || tok->dec_bytelevel) {
        /* Hold bytes (a byte-fallback piece, or any ByteLevel token, which may end inside a
         * character) until they decode to something that does not end in U+FFFD. */
        bool at_start = s->at_start;
        setok_status st = decode_window(tok, s->window.data, s->window.len, &at_start,
                                        &s->text, err);
        if (st != SETOK_OK) {
            return st;
        }
        if (s->text.len >= 3 && memcmp(s->text.data + s->text.len - 3, "\xEF\xBF\xBD", 3) == 0) {
            return SETOK_OK;
        }
    }
    return stream_emit(s, text, err);
}

setok_status setok_text_stream_flush(setok_text_stream *s, const char **text, setok_error *err)
{
    if (!s || !text) {
        return setok_fail(err, SETOK_ERR_INPUT, "token stream: missing argument");
    }
    setok_status st = stream_emit(s, text, err);
    s->at_start = true;
    return st;
}
