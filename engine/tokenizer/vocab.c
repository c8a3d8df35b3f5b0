/* vocab.c — the tokenizer's piece table, its hash tables (piece text -> id, merge pair -> rank)
 * and the small growable buffers and UTF-8 helpers the front ends share. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer-impl.h"

bool tok_buf_append(tok_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (!p) {
            return false;
        }
        b->data = p;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->data + b->len, s, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool tok_ids_push(tok_ids *v, int32_t id)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->data, cap * sizeof *p);
        if (!p) {
            return false;
        }
        v->data = p;
        v->cap = cap;
    }
    v->data[v->len++] = id;
    return true;
}

bool tok_sym_push(tok_scratch *s, int32_t id, uint32_t start, uint32_t end, bool frozen)
{
    if (s->n_syms == s->cap_syms) {
        size_t cap = s->cap_syms ? s->cap_syms * 2 : 64;
        tok_sym *p = realloc(s->syms, cap * sizeof *p);
        if (!p) {
            return false;
        }
        s->syms = p;
        s->cap_syms = cap;
    }
    int32_t i = (int32_t)s->n_syms++;
    s->syms[i] = (tok_sym){.id = id, .prev = i - 1, .next = -1, .start = start, .end = end,
                           .frozen = frozen};
    if (i > 0) {
        s->syms[i - 1].next = i;
    }
    return true;
}

void tok_scratch_free(tok_scratch *s)
{
    free(s->syms);
    free(s->heap);
    *s = (tok_scratch){0};
}

size_t tok_utf8_next(const char *str, size_t n, uint32_t *cp)
{
    const uint8_t *s = (const uint8_t *)str;
    *cp = 0xFFFD;
    if (n == 0) {
        return 0;
    }
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 1;
    }
    if (n < len) {
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        return 1;
    }
    *cp = v;
    return len;
}

/* Rust's char::is_whitespace, which the added-token lstrip/rstrip use. */
bool tok_is_whitespace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

char *tok_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int tok_parse_byte_piece(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') {
        return -1;
    }
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

setok_status tok_piece_set(setok_text_tokenizer *tok, int32_t id, const char *text, size_t len,
                           setok_error *err)
{
    /* The table is as long as the largest id: a bound from the file's own size keeps a tiny
     * file from claiming id 16777215 (and a 640 MB table). */
    int32_t max_id = tok->max_id > 0 ? tok->max_id : TOK_MAX_ID;
    if (id < 0 || id >= max_id) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: token id %d is out of range (ids must be "
                          "below %d here)", tok->path, (int)id, (int)max_id);
    }
    if (id >= tok->n_pieces) {
        int32_t n = tok->n_pieces ? tok->n_pieces : 256;
        while (n <= id) {
            n = n > max_id / 2 ? max_id : 2 * n;
        }
        tok_piece *p = realloc(tok->pieces, (size_t)n * sizeof *p);
        if (!p) {
            return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
        }
        memset(p + tok->n_pieces, 0, (size_t)(n - tok->n_pieces) * sizeof *p);
        tok->pieces = p;
        tok->n_pieces = n;
    }
    tok_piece *pc = &tok->pieces[id];
    if (pc->text && (pc->len != len || memcmp(pc->text, text, len) != 0)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: id %d is both '%s' and '%.*s'", tok->path,
                          (int)id, pc->text, (int)len, text);
    }
    if (!pc->text) {
        pc->text = tok_strndup(text, len);
        if (!pc->text) {
            return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
        }
        pc->len = (uint32_t)len;
        pc->type = TOK_NORMAL;
        pc->byte = (int16_t)tok_parse_byte_piece(text, len);
    }
    return SETOK_OK;
}

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    }
    return h;
}

static uint32_t hash_u64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* Trims n_pieces to one past the last id used and indexes the model pieces by text. */
setok_status tok_vocab_index(setok_text_tokenizer *tok, setok_error *err)
{
    while (tok->n_pieces > 0 && !tok->pieces[tok->n_pieces - 1].text) {
        tok->n_pieces--;
    }
    uint32_t cap = 16;
    while (cap < (uint32_t)tok->n_pieces * 2) {
        cap *= 2;
    }
    free(tok->vocab_slots);
    tok->vocab_slots = malloc(cap * sizeof *tok->vocab_slots);
    if (!tok->vocab_slots) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    memset(tok->vocab_slots, 0xFF, cap * sizeof *tok->vocab_slots);
    tok->vocab_mask = cap - 1;
    tok->max_piece_len = 0;
    for (int32_t id = 0; id < tok->n_pieces; id++) {
        const tok_piece *p = &tok->pieces[id];
        if (!p->text || !p->in_model) {
            continue;
        }
        if (tok_vocab_find(tok, p->text, p->len) >= 0) {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: piece '%s' appears twice", tok->path,
                              p->text);
        }
        uint32_t h = hash_bytes(p->text, p->len) & tok->vocab_mask;
        while (tok->vocab_slots[h] >= 0) {
            h = (h + 1) & tok->vocab_mask;
        }
        tok->vocab_slots[h] = id;
        if (p->len > tok->max_piece_len) {
            tok->max_piece_len = p->len;
        }
    }
    return SETOK_OK;
}

int32_t tok_vocab_find(const setok_text_tokenizer *tok, const char *s, size_t n)
{
    if (!tok->vocab_slots) {
        return -1;
    }
    uint32_t h = hash_bytes(s, n) & tok->vocab_mask;
    for (;;) {
        int32_t id = tok->vocab_slots[h];
        if (id < 0) {
            return -1;
        }
        const tok_piece *p = &tok->pieces[id];
        if (p->len == n && memcmp(p->text, s, n) == 0) {
            return id;
        }
        h = (h + 1) & tok->vocab_mask;
    }
}

setok_status tok_merges_init(setok_text_tokenizer *tok, size_t n, setok_error *err)
{
    uint32_t cap = 16;
    while (cap < n * 2) {
        cap *= 2;
    }
    tok->merge_keys = calloc(cap, sizeof *tok->merge_keys);
    tok->merge_rank = malloc(cap * sizeof *tok->merge_rank);
    tok->merge_result = malloc(cap * sizeof *tok->merge_result);
    if (!tok->merge_keys || !tok->merge_rank || !tok->merge_result) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
    }
    tok->merge_mask = cap - 1;
    return SETOK_OK;
}

/* False when the pair is already there (the first rank wins, as in tokenizers). */
bool tok_merge_add(setok_text_tokenizer *tok, int32_t left, int32_t right, int32_t rank,
                   int32_t result)
{
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    uint32_t h = hash_u64(key) & tok->merge_mask;
    while (tok->merge_keys[h]) {
        if (tok->merge_keys[h] == key) {
            return false;
        }
        h = (h + 1) & tok->merge_mask;
    }
    tok->merge_keys[h] = key;
    tok->merge_rank[h] = rank;
    tok->merge_result[h] = result;
    return true;
}

bool tok_merge_find(const setok_text_tokenizer *tok, int32_t left, int32_t right, int32_t *rank,
                    int32_t *result)
{
    if (!tok->merge_keys || left < 0 || right < 0) {
        return false;
    }
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    uint32_t h = hash_u64(key) & tok->merge_mask;
    while (tok->merge_keys[h]) {
        if (tok->merge_keys[h] == key) {
            *rank = tok->merge_rank[h];
            *result = tok->merge_result[h];
            return true;
        }
        h = (h + 1) & tok->merge_mask;
    }
    return false;
}

void tok_release(setok_text_tokenizer *tok)
{
    for (int32_t i = 0; i < tok->n_pieces; i++) {
        free(tok->pieces[i].text);
        free(tok->pieces[i].surface);
    }
    free(tok->pieces);
    free(tok->vocab_slots);
    free(tok->merge_keys);
    free(tok->merge_rank);
    free(tok->merge_result);
    for (int i = 0; i < tok->n_added; i++) {
        free(tok->added[i].content);
    }
    free(tok->added);
    for (int i = 0; i < tok->n_norm; i++) {
        free(tok->norm[i].a);
        free(tok->norm[i].b);
    }
    free(tok->norm);
    for (int i = 0; i < tok->n_dec; i++) {
        free(tok->dec[i].a);
        free(tok->dec[i].b);
    }
    free(tok->dec);
    free(tok->pre_replacement);
    free(tok->eow_suffix);
    free(tok->post_prefix);
    free(tok->post_suffix);
    free(tok->unk_surface);
    free(tok->charsmap);
    free(tok->charsmap_pool);
    free(tok->path);
}
