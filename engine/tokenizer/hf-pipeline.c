/* hf-pipeline.c — encoding and decoding with a tokenizer.json: added tokens are split off first
 * (non-normalized ones on the raw text, normalized ones after the normalizer), each remaining
 * piece goes through the normalizer, the pre-tokenizer (Metaspace, or CLIP's Split + ByteLevel)
 * and BPE, and the template adds
 * BOS/EOS. Decoding runs the decoder chain over the token strings. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer-impl.h"

static setok_status nomem(const setok_text_tokenizer *tok, setok_error *err)
{
    return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
}

/* out = s with every a replaced by b. */
static bool replace_all(tok_buf *out, const char *s, size_t n, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), i = 0;
    out->len = 0;
    if (!tok_buf_append(out, "", 0)) {
        return false;
    }
    while (i < n) {
        const char *hit = na <= n - i ? memmem(s + i, n - i, a, na) : NULL;
        size_t stop = hit ? (size_t)(hit - s) : n;
        if (!tok_buf_append(out, s + i, stop - i) || (hit && !tok_buf_append(out, b, nb))) {
            return false;
        }
        i = hit ? stop + na : n;
    }
    return true;
}

setok_status tok_hf_normalize(const setok_text_tokenizer *tok, const char *s, size_t n,
                              tok_buf *out)
{
    tok_buf tmp = {0};
    out->len = 0;
    if (!tok_buf_append(out, s, n)) {
        return SETOK_ERR_NOMEM;
    }
    for (int i = 0; i < tok->n_norm; i++) {
        const tok_norm_step *st = &tok->norm[i];
        bool ok = true;
        if (st->op == TOK_NORM_PREPEND) {
            if (out->len == 0) {
                continue;
            }
            tmp.len = 0;
            ok = tok_buf_append(&tmp, st->a, strlen(st->a)) &&
                 tok_buf_append(&tmp, out->data, out->len);
        } else if (st->op != TOK_NORM_REPLACE) {
            ok = tok_norm_unicode(st->op, out->data, out->len, st->b, &tmp);
        } else {
            ok = replace_all(&tmp, out->data, out->len, st->a, st->b);
        }
        if (!ok) {
            free(tmp.data);
            return SETOK_ERR_NOMEM;
        }
        tok_buf swap = *out;
        *out = tmp;
        tmp = swap;
    }
    free(tmp.data);
    return SETOK_OK;
}

static bool is_word_char(uint32_t cp)
{
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
           cp == '_' || (cp >= 0x80 && !tok_is_whitespace(cp));
}

static uint32_t char_before(const char *s, size_t pos)
{
    size_t i = pos;
    while (i > 0 && ((uint8_t)s[i - 1] & 0xC0) == 0x80 && pos - i < 3) {
        i--;
    }
    uint32_t cp = 0;
    if (i > 0) {
        tok_utf8_next(s + i - 1, pos - i + 1, &cp);
    }
    return cp;
}

/* The leftmost-longest added token of this pass at or after pos; [*ms, *me) includes the
 * whitespace that lstrip/rstrip take. False when none. */
static bool find_added(const setok_text_tokenizer *tok, const char *s, size_t n, size_t pos,
                       bool normalized, size_t *ms, size_t *me, int32_t *id)
{
    for (size_t i = pos; i < n; i++) {
        const tok_added *best = NULL;
        for (int k = 0; k < tok->n_added; k++) {
            const tok_added *a = &tok->added[k];
            if (a->normalized != normalized || a->len == 0 || a->len > n - i ||
                (best && a->len <= best->len) || memcmp(s + i, a->content, a->len) != 0) {
                continue;
            }
            if (a->single_word) {
                uint32_t after = 0;
                if (i + a->len < n) {
                    tok_utf8_next(s + i + a->len, n - i - a->len, &after);
                }
                if ((i > 0 && is_word_char(char_before(s, i))) ||
                    (i + a->len < n && is_word_char(after))) {
                    continue;
                }
            }
            best = a;
        }
        if (!best) {
            continue;
        }
        size_t start = i, stop = i + best->len;
        if (best->lstrip) {
            while (start > pos) {
                uint32_t cp = char_before(s, start);
                if (!tok_is_whitespace(cp)) {
                    break;
                }
                start -= cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            }
        }
        if (best->rstrip) {
            while (stop < n) {
                uint32_t cp;
                size_t l = tok_utf8_next(s + stop, n - stop, &cp);
                if (!tok_is_whitespace(cp)) {
                    break;
                }
                stop += l;
            }
        }
        *ms = start, *me = stop, *id = best->id;
        return true;
    }
    return false;
}

/* The id of s[0, n) + the end-of-word suffix when `last` and the model has one; -1 if none. */
static int32_t find_piece(const setok_text_tokenizer *tok, const char *s, size_t n, bool last,
                          tok_buf *tmp)
{
    if (!last || !tok->eow_suffix) {
        return tok_vocab_find(tok, s, n);
    }
    tmp->len = 0;
    if (!tok_buf_append(tmp, s, n) ||
        !tok_buf_append(tmp, tok->eow_suffix, strlen(tok->eow_suffix))) {
        return -2;
    }
    return tok_vocab_find(tok, tmp->data, tmp->len);
}

static setok_status bpe_word(const setok_text_tokenizer *tok, const char *w, size_t n, tok_ids *out,
                             tok_scratch *s, setok_error *err)
{
    tok_buf tmp = {0};
    if (tok->ignore_merges) {
        int32_t id = find_piece(tok, w, n, true, &tmp);
        if (id >= 0) {
            free(tmp.data);
            return tok_ids_push(out, id) ? SETOK_OK : nomem(tok, err);
        }
    }
    s->n_syms = 0;
    bool last_unk = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_next(w + i, n - i, &cp);
        int32_t id = find_piece(tok, w + i, l, i + l == n, &tmp);
        if (id == -2) {
            free(tmp.data);
            return nomem(tok, err);
        }
        bool ok = true, bytes = false;
        if (id >= 0) {
            ok = tok_sym_push(s, id, (uint32_t)i, (uint32_t)(i + l), false);
            last_unk = false;
        } else {
            if (tok->byte_fallback) {
                bytes = true;
                for (size_t k = 0; k < l; k++) {
                    bytes = bytes && tok->byte_ids[(uint8_t)w[i + k]] >= 0;
                }
                for (size_t k = 0; bytes && ok && k < l; k++) {
                    ok = tok_sym_push(s, tok->byte_ids[(uint8_t)w[i + k]], (uint32_t)(i + k),
                                      (uint32_t)(i + k + 1), false);
                }
            }
            if (!bytes && tok->unk_id >= 0) {
                if (tok->fuse_unk && last_unk) {
                    s->syms[s->n_syms - 1].end = (uint32_t)(i + l);
                } else {
                    ok = tok_sym_push(s, tok->unk_id, (uint32_t)i, (uint32_t)(i + l), false);
                }
                last_unk = true;
            }
        }
        if (!ok) {
            free(tmp.data);
            return nomem(tok, err);
        }
        i += l;
    }
    free(tmp.data);
    if (s->n_syms == 0) {
        return SETOK_OK;
    }
    if (!tok_bpe_merge(tok, w, s, false)) {
        return nomem(tok, err);
    }
    for (int32_t i = 0; i >= 0; i = s->syms[i].next) {
        if (!tok_ids_push(out, s->syms[i].id)) {
            return nomem(tok, err);
        }
    }
    return SETOK_OK;
}

/* The ByteLevel step on one pre-token: GPT-2's split when use_regex, each word shown in
 * ByteLevel characters, then BPE. */
static setok_status byte_level_words(const setok_text_tokenizer *tok, const char *p, size_t n,
                                     tok_ids *out, tok_scratch *s, setok_error *err)
{
    tok_buf word = {0};
    setok_status st = SETOK_OK;
    size_t pos = 0, start = 0, end = n;
    bool more = true;
    while (st == SETOK_OK && more) {
        if (tok->pre_bytelevel_regex) {
            more = tok_split_next(TOK_SPLIT_GPT2, p, n, &pos, &start, &end);
            if (!more) {
                break;
            }
        } else {
            more = false;
        }
        st = tok_bytelevel_map(p + start, end - start, &word) ? SETOK_OK : nomem(tok, err);
        if (st == SETOK_OK) {
            st = bpe_word(tok, word.data, word.len, out, s, err);
        }
    }
    free(word.data);
    return st;
}

/* Byte-level pre-tokenization (CLIP's): the Split pattern's words, or the whole piece, each
 * through the ByteLevel step (or straight to BPE when there is none). */
static setok_status byte_level_piece(const setok_text_tokenizer *tok, const char *p, size_t n,
                                     tok_ids *out, tok_scratch *s, setok_error *err)
{
    if (tok->pre_pattern == TOK_SPLIT_NONE) {
        return byte_level_words(tok, p, n, out, s, err);
    }
    setok_status st = SETOK_OK;
    size_t pos = 0, start, end;
    while (st == SETOK_OK && tok_split_next(tok->pre_pattern, p, n, &pos, &start, &end)) {
        st = tok->pre_bytelevel ? byte_level_words(tok, p + start, end - start, out, s, err)
                                : bpe_word(tok, p + start, end - start, out, s, err);
    }
    return st;
}

/* Pre-tokenizes one piece of normalized text and runs BPE on each word; `first`: the piece
 * starts the input (Metaspace prepend_scheme "first"). */
static setok_status model_piece(const setok_text_tokenizer *tok, const char *p, size_t n,
                                bool first, tok_ids *out, tok_scratch *s, setok_error *err)
{
    if (n == 0) {
        return SETOK_OK;
    }
    if (tok->pre_pattern != TOK_SPLIT_NONE || tok->pre_bytelevel) {
        return byte_level_piece(tok, p, n, out, s, err);
    }
    if (!tok->pre_metaspace) {
        return bpe_word(tok, p, n, out, s, err);
    }
    const char *rep = tok->pre_replacement;
    size_t nrep = strlen(rep);
    tok_buf words = {0}, tmp = {0};
    setok_status st = SETOK_OK;
    if (!replace_all(&tmp, p, n, " ", rep)) {
        st = nomem(tok, err);
        goto done;
    }
    bool starts = tmp.len >= nrep && memcmp(tmp.data, rep, nrep) == 0;
    if (!starts && (tok->pre_prepend == TOK_PREPEND_ALWAYS ||
                    (tok->pre_prepend == TOK_PREPEND_FIRST && first))) {
        if (!tok_buf_append(&words, rep, nrep)) {
            st = nomem(tok, err);
            goto done;
        }
    }
    if (!tok_buf_append(&words, tmp.data, tmp.len)) {
        st = nomem(tok, err);
        goto done;
    }
    size_t start = 0;
    while (st == SETOK_OK && start < words.len) {
        size_t stop = words.len;
        if (tok->pre_split) {
            const char *hit = memmem(words.data + start + 1, words.len - start - 1, rep, nrep);
            stop = hit ? (size_t)(hit - words.data) : words.len;
        }
        st = bpe_word(tok, words.data + start, stop - start, out, s, err);
        start = stop;
    }
done:
    free(words.data);
    free(tmp.data);
    return st;
}

/* A stretch of raw text between non-normalized added tokens. */
static setok_status raw_piece(const setok_text_tokenizer *tok, const char *p, size_t n, bool first,
                              tok_ids *out, tok_scratch *s, setok_error *err)
{
    if (n == 0) {
        return SETOK_OK;
    }
    tok_buf norm = {0};
    if (tok_hf_normalize(tok, p, n, &norm) != SETOK_OK) {
        free(norm.data);
        return nomem(tok, err);
    }
    setok_status st = SETOK_OK;
    size_t pos = 0, ms, me;
    int32_t id;
    while (st == SETOK_OK && find_added(tok, norm.data, norm.len, pos, true, &ms, &me, &id)) {
        st = model_piece(tok, norm.data + pos, ms - pos, first && pos == 0, out, s, err);
        if (st == SETOK_OK && !tok_ids_push(out, id)) {
            st = nomem(tok, err);
        }
        pos = me;
    }
    if (st == SETOK_OK) {
        st = model_piece(tok, norm.data + pos, norm.len - pos, first && pos == 0, out, s, err);
    }
    free(norm.data);
    return st;
}

setok_status tok_hf_encode(const setok_text_tokenizer *tok, const char *text, size_t len,
                           tok_ids *out, tok_scratch *s, setok_error *err)
{
    size_t pos = 0, ms, me;
    int32_t id;
    while (find_added(tok, text, len, pos, false, &ms, &me, &id)) {
        setok_status st = raw_piece(tok, text + pos, ms - pos, pos == 0, out, s, err);
        if (st != SETOK_OK) {
            return st;
        }
        if (!tok_ids_push(out, id)) {
            return nomem(tok, err);
        }
        pos = me;
    }
    return raw_piece(tok, text + pos, len - pos, pos == 0, out, s, err);
}

// ----------------------------------------------------------------------------
// decoding: a list of token strings rewritten by each decoder in turn

typedef struct tok_list {
    tok_buf text;
    size_t *ends; /* token i is text[ends[i-1], ends[i]) */
    size_t n, cap;
} tok_list;

static bool list_push(tok_list *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        size_t *p = realloc(l->ends, cap * sizeof *p);
        if (!p) {
            return false;
        }
        l->ends = p;
        l->cap = cap;
    }
    if (!tok_buf_append(&l->text, s, n)) {
        return false;
    }
    l->ends[l->n++] = l->text.len;
    return true;
}

static void list_clear(tok_list *l)
{
    l->n = 0;
    l->text.len = 0;
}

static const char *list_get(const tok_list *l, size_t i, size_t *n)
{
    size_t start = i ? l->ends[i - 1] : 0;
    *n = l->ends[i] - start;
    return l->text.data + start;
}

static bool flush_bytes(tok_list *out, tok_buf *bytes)
{
    if (bytes->len == 0) {
        return true;
    }
    bool valid = true;
    for (size_t i = 0; i < bytes->len && valid;) {
        uint32_t cp;
        size_t l = tok_utf8_next(bytes->data + i, bytes->len - i, &cp);
        valid = !(cp == 0xFFFD && l == 1 && (uint8_t)bytes->data[i] >= 0x80);
        i += l;
    }
    bool ok = true;
    if (valid) {
        ok = list_push(out, bytes->data, bytes->len);
    } else {
        for (size_t i = 0; i < bytes->len && ok; i++) {
            ok = list_push(out, "\xEF\xBF\xBD", 3);
        }
    }
    bytes->len = 0;
    return ok;
}

static bool strip_token(tok_list *out, const char *t, size_t n, const char *c, int start, int stop)
{
    size_t nc = strlen(c);
    for (int k = 0; k < start && n >= nc && memcmp(t, c, nc) == 0; k++) {
        t += nc, n -= nc;
    }
    for (int k = 0; k < stop && n >= nc && memcmp(t + n - nc, c, nc) == 0; k++) {
        n -= nc;
    }
    return list_push(out, t, n);
}

static bool apply_step(const tok_dec_step *d, const tok_list *in, tok_list *out, bool at_start,
                       bool *fused)
{
    tok_buf tmp = {0}, bytes = {0};
    bool ok = true;
    if (d->op == TOK_DEC_FUSE) {
        ok = list_push(out, in->text.data ? in->text.data : "", in->text.len);
        *fused = true;
    }
    for (size_t i = 0; ok && i < in->n && d->op != TOK_DEC_FUSE; i++) {
        size_t n;
        const char *t = list_get(in, i, &n);
        switch (d->op) {
        case TOK_DEC_REPLACE:
            ok = replace_all(&tmp, t, n, d->a, d->b) && list_push(out, tmp.data, tmp.len);
            break;
        case TOK_DEC_BYTE_FALLBACK: {
            int b = tok_parse_byte_piece(t, n);
            if (b >= 0) {
                char c = (char)b;
                ok = tok_buf_append(&bytes, &c, 1);
            } else {
                ok = flush_bytes(out, &bytes) && list_push(out, t, n);
            }
            break;
        }
        case TOK_DEC_STRIP:
            ok = strip_token(out, t, n, d->a, *fused && !at_start ? 0 : d->start, d->stop);
            break;
        case TOK_DEC_BYTELEVEL:
            ok = tok_bytelevel_unmap(t, n, &bytes);
            break;
        case TOK_DEC_METASPACE:
            /* as tokenizers: in the first token every replacement character is dropped (the
             * prepended one and any other), elsewhere each becomes a space */
            ok = replace_all(&tmp, t, n, d->a,
                             i == 0 && at_start && d->prepend != TOK_PREPEND_NEVER ? "" : " ") &&
                 list_push(out, tmp.data, tmp.len);
            break;
        default:
            break;
        }
    }
    if (ok && d->op == TOK_DEC_BYTE_FALLBACK) {
        ok = flush_bytes(out, &bytes);
    }
    if (ok && d->op == TOK_DEC_BYTELEVEL) {
        /* tokenizers joins the bytes and decodes them lossily into one string */
        ok = tok_utf8_lossy(bytes.data ? bytes.data : "", bytes.len, &tmp) &&
             list_push(out, tmp.data ? tmp.data : "", tmp.len);
    }
    free(tmp.data);
    free(bytes.data);
    return ok;
}

setok_status tok_hf_decode(const setok_text_tokenizer *tok, const int32_t *ids, size_t n,
                           bool *at_start_io, tok_buf *out, setok_error *err)
{
    bool at_start = *at_start_io;
    *at_start_io = at_start && n == 0;
    tok_list a = {0}, b = {0};
    bool ok = true, fused = false;
    for (size_t i = 0; ok && i < n; i++) {
        const tok_piece *p = &tok->pieces[ids[i]];
        ok = p->surface ? list_push(&a, p->surface, p->surface_len)
                        : list_push(&a, p->text, p->len);
    }
    for (int k = 0; ok && k < tok->n_dec; k++) {
        list_clear(&b);
        ok = apply_step(&tok->dec[k], &a, &b, at_start, &fused);
        tok_list swap = a;
        a = b;
        b = swap;
    }
    out->len = 0;
    ok = ok && tok_buf_append(out, "", 0);
    for (size_t i = 0; ok && i < a.n; i++) {
        size_t len;
        const char *t = list_get(&a, i, &len);
        /* No decoder: tokenizers joins the tokens with spaces. */
        if (tok->n_dec == 0 && (i > 0 || !at_start)) {
            ok = tok_buf_append(out, " ", 1);
        }
        ok = ok && tok_buf_append(out, t, len);
    }
    free(a.text.data);
    free(a.ends);
    free(b.text.data);
    free(b.ends);
    return ok ? SETOK_OK : nomem(tok, err);
}
