/* spm.c — SentencePiece tokenizer.model: reads the ModelProto protobuf (wire format parsed here:
 * pieces with score and type, trainer_spec, normalizer_spec), normalizes as sentencepiece does
 * (the rule's precompiled charsmap when it has one, as nmt_nfkc, nfkc and nmt_nfkc_cf do; dummy
 * prefix, extra whitespace, U+2581 escaping), encodes with BPE (merge the best-scored pair) or
 * Unigram (Viterbi), falls back to bytes, and decodes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer-impl.h"

#define SPM_SPACE "\xE2\x96\x81"

static setok_status nomem(const setok_text_tokenizer *tok, setok_error *err)
{
    return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", tok->path);
}

// ----------------------------------------------------------------------------
// protobuf wire format

typedef struct pb_reader {
    const uint8_t *p, *end;
} pb_reader;

typedef struct pb_field {
    uint32_t number, wire;
    uint64_t value;        /* varint, fixed32, fixed64 */
    const uint8_t *data;   /* length-delimited */
    size_t len;
} pb_field;

static bool pb_varint(pb_reader *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            return false;
        }
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            return true;
        }
    }
    return false;
}

/* False at a malformed field; check r->p == r->end for the clean end. */
static bool pb_next(pb_reader *r, pb_field *f)
{
    uint64_t key;
    if (!pb_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF) {
        return false;
    }
    f->number = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0:
        return pb_varint(r, &f->value);
    case 1:
    case 5: {
        size_t n = f->wire == 1 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n) {
            return false;
        }
        f->value = 0;
        for (size_t i = 0; i < n; i++) {
            f->value |= (uint64_t)r->p[i] << (8 * i);
        }
        r->p += n;
        return true;
    }
    case 2: {
        uint64_t n;
        if (!pb_varint(r, &n) || n > (uint64_t)(r->end - r->p)) {
            return false;
        }
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return true;
    }
    default:
        return false;
    }
}

static setok_status malformed(const setok_text_tokenizer *tok, const char *what, setok_error *err)
{
    return setok_fail(err, SETOK_ERR_INPUT, "%s: not a SentencePiece model (malformed %s)",
                      tok->path, what);
}

static setok_status parse_piece(setok_text_tokenizer *tok, const pb_field *msg, int32_t id,
                                setok_error *err)
{
    pb_reader r = {msg->data, msg->data + msg->len};
    pb_field f;
    const uint8_t *text = NULL;
    size_t len = 0;
    float score = 0;
    uint64_t type = TOK_NORMAL;
    while (r.p < r.end) {
        if (!pb_next(&r, &f)) {
            return malformed(tok, "piece", err);
        }
        if (f.number == 1 && f.wire == 2) {
            text = f.data, len = f.len;
        } else if (f.number == 2 && f.wire == 5) {
            uint32_t bits = (uint32_t)f.value;
            memcpy(&score, &bits, sizeof score);
        } else if (f.number == 3 && f.wire == 0) {
            type = f.value;
        }
    }
    if (!text || len == 0 || type < TOK_NORMAL || type > TOK_BYTE || !isfinite(score)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: piece %d has no text, a bad type or a bad "
                          "score", tok->path, (int)id);
    }
    setok_status st = tok_piece_set(tok, id, (const char *)text, len, err);
    if (st != SETOK_OK) {
        return st;
    }
    tok_piece *p = &tok->pieces[id];
    p->score = score;
    p->type = (uint8_t)type;
    p->in_model = true;
    p->special = type == TOK_CONTROL;
    if (type != TOK_BYTE) {
        p->byte = -1;
    } else if (p->byte < 0) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: byte piece %d is '%s', not <0xNN>",
                          tok->path, (int)id, p->text);
    }
    return SETOK_OK;
}

static setok_status parse_trainer(setok_text_tokenizer *tok, const pb_field *msg, int *model_type,
                                  setok_error *err)
{
    pb_reader r = {msg->data, msg->data + msg->len};
    pb_field f;
    while (r.p < r.end) {
        if (!pb_next(&r, &f)) {
            return malformed(tok, "trainer_spec", err);
        }
        int32_t v = (int32_t)(int64_t)f.value;
        if (f.wire == 0) {
            switch (f.number) {
            case 3: *model_type = v; break;
            case 24:
                if (f.value) {
                    return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: "
                                      "treat_whitespace_as_suffix is not supported", tok->path);
                }
                break;
            case 35: tok->byte_fallback = f.value != 0; break;
            case 40: tok->unk_id = v; break;
            case 41: tok->bos_id = v; break;
            case 42: tok->eos_id = v; break;
            default: break;
            }
        } else if (f.wire == 2 && f.number == 44) {
            free(tok->unk_surface);
            tok->unk_surface = tok_strndup((const char *)f.data, f.len);
            if (!tok->unk_surface) {
                return nomem(tok, err);
            }
        }
    }
    return SETOK_OK;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* precompiled_charsmap: <trie bytes, u32 LE><the double array, u32 LE units><the pool of
 * NUL-ended replacement strings>, as sentencepiece's normalizer stores it. */
static setok_status parse_charsmap(setok_text_tokenizer *tok, const uint8_t *p, size_t n,
                                   setok_error *err)
{
    uint32_t trie = n > 4 ? le32(p) : 0;
    if (n <= 4 || trie == 0 || trie % 4 != 0 || trie >= n - 4 || p[n - 1] != '\0') {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: the normalizer's precompiled charsmap is "
                          "malformed (%zu bytes, a %u-byte trie)", tok->path, n, (unsigned)trie);
    }
    free(tok->charsmap);
    free(tok->charsmap_pool);
    tok->charsmap_units = trie / 4;
    tok->charsmap_pool_len = n - 4 - trie;
    tok->charsmap = malloc(trie);
    tok->charsmap_pool = malloc(tok->charsmap_pool_len);
    if (!tok->charsmap || !tok->charsmap_pool) {
        return nomem(tok, err);
    }
    for (size_t i = 0; i < tok->charsmap_units; i++) {
        tok->charsmap[i] = le32(p + 4 + 4 * i);
    }
    memcpy(tok->charsmap_pool, p + 4 + trie, tok->charsmap_pool_len);
    return SETOK_OK;
}

static setok_status parse_normalizer(setok_text_tokenizer *tok, const pb_field *msg,
                                     setok_error *err)
{
    pb_reader r = {msg->data, msg->data + msg->len};
    pb_field f;
    while (r.p < r.end) {
        if (!pb_next(&r, &f)) {
            return malformed(tok, "normalizer_spec", err);
        }
        if (f.number == 2 && f.wire == 2 && f.len > 0) {
            setok_status st = parse_charsmap(tok, f.data, f.len, err);
            if (st != SETOK_OK) {
                return st;
            }
        } else if (f.wire == 0 && f.number == 3) {
            tok->add_dummy_prefix = f.value != 0;
        } else if (f.wire == 0 && f.number == 4) {
            tok->remove_extra_ws = f.value != 0;
        } else if (f.wire == 0 && f.number == 5) {
            tok->escape_ws = f.value != 0;
        }
    }
    return SETOK_OK;
}

setok_status tok_spm_load(setok_text_tokenizer *tok, const uint8_t *data, size_t len,
                          setok_error *err)
{
    tok->add_dummy_prefix = tok->remove_extra_ws = tok->escape_ws = true;
    tok->unk_id = 0, tok->bos_id = 1, tok->eos_id = 2;
    int model_type = 1; /* UNIGRAM */
    int32_t n = 0;
    pb_reader r = {data, data + len};
    pb_field f;
    while (r.p < r.end) {
        if (!pb_next(&r, &f)) {
            return malformed(tok, "ModelProto", err);
        }
        setok_status st = SETOK_OK;
        if (f.number == 1 && f.wire == 2) {
            st = parse_piece(tok, &f, n++, err);
        } else if (f.number == 2 && f.wire == 2) {
            st = parse_trainer(tok, &f, &model_type, err);
        } else if (f.number == 3 && f.wire == 2) {
            st = parse_normalizer(tok, &f, err);
        }
        if (st != SETOK_OK) {
            return st;
        }
    }
    if (n == 0) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: not a SentencePiece model (no pieces)",
                          tok->path);
    }
    if (model_type != 1 && model_type != 2) {
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: model_type %d is not supported (only "
                          "UNIGRAM and BPE)", tok->path, model_type);
    }
    tok->kind = model_type == 2 ? TOK_KIND_SPM_BPE : TOK_KIND_SPM_UNIGRAM;
    setok_status st = tok_vocab_index(tok, err);
    if (st != SETOK_OK) {
        return st;
    }
    int32_t *ids[3] = {&tok->unk_id, &tok->bos_id, &tok->eos_id};
    for (int i = 0; i < 3; i++) {
        if (*ids[i] < 0 || *ids[i] >= tok->n_pieces) {
            *ids[i] = -1;
        }
    }
    if (tok->unk_id < 0 || tok->pieces[tok->unk_id].type != TOK_UNKNOWN) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: unk_id does not name an unknown piece",
                          tok->path);
    }
    if (!tok->unk_surface) {
        tok->unk_surface = tok_strndup(" \xE2\x81\x87 ", 5);
        if (!tok->unk_surface) {
            return nomem(tok, err);
        }
    }
    tok->min_score = INFINITY, tok->max_score = -INFINITY;
    for (int32_t i = 0; i < tok->n_pieces; i++) {
        tok->has_user_pieces |= tok->pieces[i].type == TOK_USER;
        if (tok->pieces[i].type == TOK_NORMAL) {
            tok->min_score = fminf(tok->min_score, tok->pieces[i].score);
            tok->max_score = fmaxf(tok->max_score, tok->pieces[i].score);
        }
    }
    if (tok->min_score > tok->max_score) {
        tok->min_score = tok->max_score = 0;
    }
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// encoding

/* Length of the longest user-defined piece at s, or 0. */
static size_t user_match(const setok_text_tokenizer *tok, const char *s, size_t n)
{
    size_t max = n < tok->max_piece_len ? n : tok->max_piece_len;
    for (size_t l = max; l > 0; l--) {
        int32_t id = tok_vocab_find(tok, s, l);
        if (id >= 0 && tok->pieces[id].type == TOK_USER) {
            return l;
        }
    }
    return 0;
}

/* darts-clone's unit: a label byte (with bit 31 on a value unit), has_leaf in bit 8, the
 * offset to the children in the upper bits (bit 9: shifted by 8 more), the value in bits 0-30. */
#define DA_OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
#define DA_LABEL(u) ((u) & ((1u << 31) | 0xFFu))
#define DA_HAS_LEAF(u) (((u) >> 8) & 1u)
#define DA_VALUE(u) ((u) & ((1u << 31) - 1))

/* The charsmap's rule for the start of s: the bytes it replaces (0: none) and its replacement.
 * The longest of the first 32 keys that s starts with, as sentencepiece takes it. */
static size_t charsmap_rule(const setok_text_tokenizer *tok, const char *s, size_t n,
                            const char **to)
{
    const uint32_t *a = tok->charsmap;
    size_t size = tok->charsmap_units, best = 0;
    uint32_t value = 0, id = DA_OFFSET(a[0]);
    for (size_t i = 0, found = 0; i < n && found < 32; i++) {
        uint8_t c = (uint8_t)s[i];
        id ^= c;
        if (id >= size || DA_LABEL(a[id]) != c) {
            break;
        }
        uint32_t unit = a[id];
        id ^= DA_OFFSET(unit);
        if (DA_HAS_LEAF(unit)) {
            if (id >= size) {
                break;
            }
            best = i + 1;
            value = DA_VALUE(a[id]);
            found++;
        }
    }
    if (best == 0 || value >= tok->charsmap_pool_len) {
        return 0;
    }
    *to = tok->charsmap_pool + value;
    return best;
}

/* sentencepiece's NormalizePrefix: what the start of s becomes (*to, *to_len) and how many
 * bytes that takes: a user-defined piece as it is, else the charsmap's rule, else one
 * character (an invalid UTF-8 byte becomes U+FFFD). */
static size_t normalize_prefix(const setok_text_tokenizer *tok, const char *s, size_t n,
                               const char **to, size_t *to_len)
{
    size_t l = tok->has_user_pieces ? user_match(tok, s, n) : 0;
    if (l == 0 && tok->charsmap && (l = charsmap_rule(tok, s, n, to)) > 0) {
        *to_len = strlen(*to);
        return l;
    }
    uint32_t cp = 0;
    if (l == 0) {
        l = tok_utf8_next(s, n, &cp);
    }
    if (cp == 0xFFFD && l == 1) {
        *to = "\xEF\xBF\xBD";
        *to_len = 3;
    } else {
        *to = s;
        *to_len = l;
    }
    return l;
}

/* sentencepiece's Normalizer::Normalize: each piece of the text through normalize_prefix; a
 * dummy prefix; spaces escaped as U+2581; runs of spaces and leading / trailing spaces
 * dropped with remove_extra_whitespaces. */
static bool normalize(const setok_text_tokenizer *tok, const char *s, size_t n, tok_buf *out)
{
    const char *space = tok->escape_ws ? SPM_SPACE : " ";
    size_t n_space = strlen(space), i = 0, to_len;
    const char *to;
    out->len = 0;
    if (!tok_buf_append(out, "", 0)) {
        return false;
    }
    while (tok->remove_extra_ws && i < n) {
        size_t l = normalize_prefix(tok, s + i, n - i, &to, &to_len);
        if (to_len != 1 || to[0] != ' ') {
            break;
        }
        i += l;
    }
    if (i == n) {
        return true;
    }
    if (tok->add_dummy_prefix && !tok_buf_append(out, space, n_space)) {
        return false;
    }
    bool prev_space = tok->remove_extra_ws;
    while (i < n) {
        i += normalize_prefix(tok, s + i, n - i, &to, &to_len);
        while (prev_space && to_len > 0 && to[0] == ' ') {
            to++, to_len--;
        }
        if (to_len > 0) {
            for (size_t k = 0; k < to_len; k++) {
                bool ok = to[k] == ' ' ? tok_buf_append(out, space, n_space)
                                       : tok_buf_append(out, to + k, 1);
                if (!ok) {
                    return false;
                }
            }
            prev_space = to[to_len - 1] == ' ';
        }
        if (!tok->remove_extra_ws) {
            prev_space = false;
        }
    }
    while (tok->remove_extra_ws && out->len >= n_space &&
           memcmp(out->data + out->len - n_space, space, n_space) == 0) {
        out->len -= n_space;
    }
    out->data[out->len] = '\0';
    return true;
}

/* Appends the piece for text[start, end) (id known or -1), bytes or unk when unknown. */
static bool emit(const setok_text_tokenizer *tok, const char *text, uint32_t start, uint32_t end,
                 int32_t id, tok_ids *out, bool *prev_unk)
{
    if (id < 0) {
        id = tok_vocab_find(tok, text + start, end - start);
    }
    if (id >= 0 && tok->pieces[id].type != TOK_UNKNOWN) {
        *prev_unk = false;
        return tok_ids_push(out, id);
    }
    if (tok->byte_fallback) {
        *prev_unk = false;
        for (uint32_t i = start; i < end; i++) {
            int32_t b = tok->byte_ids[(uint8_t)text[i]];
            if (!tok_ids_push(out, b >= 0 ? b : tok->unk_id)) {
                return false;
            }
        }
        return true;
    }
    /* Runs of unknown pieces become one, as sentencepiece reports them. */
    if (*prev_unk) {
        return true;
    }
    *prev_unk = true;
    return tok_ids_push(out, tok->unk_id);
}

static setok_status encode_bpe(const setok_text_tokenizer *tok, const tok_buf *norm, tok_ids *out,
                               tok_scratch *s, setok_error *err)
{
    s->n_syms = 0;
    for (size_t i = 0; i < norm->len;) {
        size_t l = user_match(tok, norm->data + i, norm->len - i);
        bool frozen = l > 0;
        if (!l) {
            uint32_t cp;
            l = tok_utf8_next(norm->data + i, norm->len - i, &cp);
        }
        if (!tok_sym_push(s, -1, (uint32_t)i, (uint32_t)(i + l), frozen)) {
            return nomem(tok, err);
        }
        i += l;
    }
    if (s->n_syms == 0) {
        return SETOK_OK;
    }
    if (!tok_bpe_merge(tok, norm->data, s, true)) {
        return nomem(tok, err);
    }
    bool prev_unk = false;
    for (int32_t i = 0; i >= 0; i = s->syms[i].next) {
        if (!emit(tok, norm->data, s->syms[i].start, s->syms[i].end, -1, out, &prev_unk)) {
            return nomem(tok, err);
        }
    }
    return SETOK_OK;
}

typedef struct viterbi_node {
    double score;
    int32_t from; /* start of the best last piece ending here; -1 unreached */
    int32_t id;   /* that piece, or -1 for an unknown character */
} viterbi_node;

static setok_status encode_unigram(const setok_text_tokenizer *tok, const tok_buf *norm,
                                   tok_ids *out, setok_error *err)
{
    size_t n = norm->len;
    if (n == 0) {
        return SETOK_OK;
    }
    if (n > INT32_MAX - 1) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: text too long", tok->path);
    }
    viterbi_node *node = malloc((n + 1) * sizeof *node);
    if (!node) {
        return nomem(tok, err);
    }
    for (size_t i = 0; i <= n; i++) {
        node[i] = (viterbi_node){.score = 0, .from = -1, .id = -1};
    }
    node[0].from = 0;
    const double unk_score = (double)tok->min_score - 10.0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t mblen = tok_utf8_next(norm->data + i, n - i, &cp);
        bool has_single = false;
        for (size_t j = i + mblen; j <= n && j - i <= tok->max_piece_len;) {
            int32_t id = tok_vocab_find(tok, norm->data + i, j - i);
            uint8_t type = id >= 0 ? tok->pieces[id].type : 0;
            if (type == TOK_NORMAL || type == TOK_USER) {
                double score = type == TOK_USER ? (double)(j - i) * tok->max_score - 0.1
                                                : (double)tok->pieces[id].score;
                double cand = node[i].score + score;
                if (node[j].from < 0 || cand > node[j].score) {
                    node[j] = (viterbi_node){.score = cand, .from = (int32_t)i, .id = id};
                }
                has_single = has_single || j - i == mblen;
            }
            if (j == n) {
                break;
            }
            j += tok_utf8_next(norm->data + j, n - j, &cp);
        }
        if (!has_single) {
            double cand = node[i].score + unk_score;
            size_t j = i + mblen;
            if (node[j].from < 0 || cand > node[j].score) {
                node[j] = (viterbi_node){.score = cand, .from = (int32_t)i, .id = -1};
            }
        }
        i += mblen;
    }
    /* Walk back from the end, then emit left to right. */
    size_t count = 0;
    for (size_t j = n; j > 0; j = (size_t)node[j].from) {
        count++;
    }
    size_t *ends = malloc(count * sizeof *ends);
    if (!ends) {
        free(node);
        return nomem(tok, err);
    }
    size_t k = count;
    for (size_t j = n; j > 0; j = (size_t)node[j].from) {
        ends[--k] = j;
    }
    bool prev_unk = false, ok = true;
    for (k = 0; k < count && ok; k++) {
        size_t j = ends[k];
        int32_t id = node[j].id >= 0 ? node[j].id : tok->unk_id;
        ok = emit(tok, norm->data, (uint32_t)node[j].from, (uint32_t)j, id, out, &prev_unk);
    }
    free(ends);
    free(node);
    return ok ? SETOK_OK : nomem(tok, err);
}

setok_status tok_spm_encode(const setok_text_tokenizer *tok, const char *text, size_t len,
                            tok_ids *out, tok_scratch *s, setok_error *err)
{
    tok_buf norm = {0};
    if (len > UINT32_MAX / 4) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: text too long", tok->path);
    }
    if (!normalize(tok, text, len, &norm)) {
        free(norm.data);
        return nomem(tok, err);
    }
    setok_status st = tok->kind == TOK_KIND_SPM_BPE ? encode_bpe(tok, &norm, out, s, err)
                                                   : encode_unigram(tok, &norm, out, err);
    free(norm.data);
    return st;
}

// ----------------------------------------------------------------------------
// decoding

static bool flush_bytes(tok_buf *out, tok_buf *bytes)
{
    bool ok = true;
    for (size_t i = 0; i < bytes->len && ok;) {
        uint32_t cp;
        size_t l = tok_utf8_next(bytes->data + i, bytes->len - i, &cp);
        bool bad = cp == 0xFFFD && l == 1 && (uint8_t)bytes->data[i] >= 0x80;
        ok = bad ? tok_buf_append(out, "\xEF\xBF\xBD", 3) : tok_buf_append(out, bytes->data + i, l);
        i += l;
    }
    bytes->len = 0;
    return ok;
}

/* out = t with U+2581 turned back into spaces. */
static bool replace_space(tok_buf *out, const char *t)
{
    out->len = 0;
    bool ok = tok_buf_append(out, "", 0);
    for (const char *hit; ok && (hit = strstr(t, SPM_SPACE)); t = hit + 3) {
        ok = tok_buf_append(out, t, (size_t)(hit - t)) && tok_buf_append(out, " ", 1);
    }
    return ok && tok_buf_append(out, t, strlen(t));
}

setok_status tok_spm_decode(const setok_text_tokenizer *tok, const int32_t *ids, size_t n,
                            bool *at_start, tok_buf *out, setok_error *err)
{
    tok_buf bytes = {0}, tmp = {0};
    /* bos_ws: a leading U+2581 may still be dropped; seen: the last piece dropped one. */
    bool ok = true, bos_ws = *at_start, seen = false;
    out->len = 0;
    ok = tok_buf_append(out, "", 0);
    for (size_t i = 0; ok && i < n; i++) {
        const tok_piece *p = &tok->pieces[ids[i]];
        if (p->type == TOK_BYTE) {
            char c = (char)p->byte;
            ok = tok_buf_append(&bytes, &c, 1);
            continue;
        }
        ok = flush_bytes(out, &bytes);
        bos_ws = bos_ws && !seen && out->len == 0;
        seen = false;
        if (p->type == TOK_CONTROL) {
            continue;
        }
        if (p->type == TOK_UNKNOWN) {
            ok = ok && tok_buf_append(out, tok->unk_surface, strlen(tok->unk_surface));
            continue;
        }
        const char *t = p->text;
        if (bos_ws && (tok->add_dummy_prefix || tok->remove_extra_ws) &&
            strncmp(t, SPM_SPACE, 3) == 0) {
            t += 3;
            seen = !tok->remove_extra_ws;
        }
        ok = ok && replace_space(&tmp, t) && tok_buf_append(out, tmp.data, tmp.len);
    }
    ok = ok && flush_bytes(out, &bytes);
    *at_start = bos_ws && !seen && out->len == 0;
    free(bytes.data);
    free(tmp.data);
    return ok ? SETOK_OK : nomem(tok, err);
}
