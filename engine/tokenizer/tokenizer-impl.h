/* tokenizer-impl.h — private to engine/tokenizer: the tokenizer struct shared by the
 * tokenizer.json (hf-json.c, hf-pipeline.c) and tokenizer.model (spm.c) front ends, the
 * vocabulary tables and buffers (vocab.c) and the BPE merge loop (bpe.c). */
#ifndef SETOK_TOKENIZER_IMPL_H
#define SETOK_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "setok/tokenizer.h"

/* SentencePiece's numbering; tokenizer.json pieces are TOK_NORMAL. */
enum tok_piece_type {
    TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER = 4, TOK_UNUSED = 5, TOK_BYTE = 6
};

typedef struct tok_piece {
    char *text;    /* NUL-terminated; NULL for an id nothing uses */
    char *surface; /* what the decoders see, when not text: a normalized added token */
    uint32_t len, surface_len;
    float score;
    uint8_t type;
    bool in_model; /* in the model's vocabulary, not only an added token */
    bool special;  /* dropped by decode(skip_special_tokens) */
    int16_t byte;  /* 0..255 for a byte-fallback piece <0xNN>, else -1 */
} tok_piece;

typedef struct tok_buf {
    char *data;
    size_t len, cap;
} tok_buf;

typedef struct tok_ids {
    int32_t *data;
    size_t len, cap;
} tok_ids;

typedef struct tok_added {
    int32_t id;
    char *content; /* normalized already when `normalized` */
    uint32_t len;
    bool special, single_word, lstrip, rstrip, normalized;
} tok_added;

enum tok_kind { TOK_KIND_HF_BPE, TOK_KIND_SPM_BPE, TOK_KIND_SPM_UNIGRAM };
enum tok_norm_op {
    TOK_NORM_PREPEND, TOK_NORM_REPLACE, TOK_NORM_NFC, TOK_NORM_LOWERCASE,
    TOK_NORM_WS_RUNS /* Replace(Regex("\\s+"), b) */
};
/* Split pre-tokenizer patterns the engine knows (it has no general regex engine). */
enum tok_split_kind {
    TOK_SPLIT_NONE, TOK_SPLIT_CLIP, TOK_SPLIT_CLIP_SPECIALS,
    TOK_SPLIT_GPT2 /* what ByteLevel(use_regex) splits by */
};
enum tok_dec_op {
    TOK_DEC_REPLACE, TOK_DEC_BYTE_FALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP, TOK_DEC_METASPACE,
    TOK_DEC_BYTELEVEL
};
enum tok_prepend { TOK_PREPEND_NEVER, TOK_PREPEND_FIRST, TOK_PREPEND_ALWAYS };

/* Prepend a; replace a by b. */
typedef struct tok_norm_step {
    int op;
    char *a, *b;
} tok_norm_step;

/* Replace a by b; strip `start` leading and `stop` trailing a; metaspace: replacement a. */
typedef struct tok_dec_step {
    int op;
    char *a, *b;
    int start, stop, prepend;
} tok_dec_step;

/* The largest id any tokenizer may use (exclusive). */
#define TOK_MAX_ID (1 << 24)

struct setok_text_tokenizer {
    int kind;
    char *path;
    tok_piece *pieces;
    int32_t n_pieces;
    int32_t max_id;       /* ids must be below this (set before pieces); 0: TOK_MAX_ID */
    int32_t *vocab_slots; /* open addressing: model piece text -> id, -1 empty */
    uint32_t vocab_mask;
    uint64_t *merge_keys; /* (left id << 32 | right id) + 1, 0 empty */
    int32_t *merge_rank, *merge_result;
    uint32_t merge_mask;
    int32_t unk_id, bos_id, eos_id;
    int32_t byte_ids[256]; /* <0xNN> in the model vocabulary, -1 when missing */
    bool byte_fallback, fuse_unk, ignore_merges;
    tok_added *added;
    int n_added;
    tok_norm_step *norm;
    int n_norm;
    bool pre_metaspace, pre_split;
    int pre_prepend;
    char *pre_replacement;
    int pre_pattern;        /* enum tok_split_kind: a Split pre-tokenizer */
    bool pre_bytelevel;     /* ByteLevel pre-tokenizer */
    bool pre_bytelevel_regex; /* ... with use_regex: split by GPT-2's pattern first */
    char *eow_suffix;       /* BPE end_of_word_suffix (CLIP's "</w>"), NULL when none */
    int32_t *post_prefix, *post_suffix;
    int n_post_prefix, n_post_suffix;
    tok_dec_step *dec;
    int n_dec;
    bool dec_bytelevel; /* the decoder chain has a ByteLevel step */
    bool dec_byte_fallback; /* ... a ByteFallback step: a run of byte pieces decodes as a whole */
    /* tokenizer.model */
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    bool has_user_pieces;   /* user-defined pieces: the normalizer keeps them as they are */
    /* the normalizer's precompiled charsmap (nmt_nfkc, nfkc, ...): a darts-clone double array
     * over input bytes whose values are offsets into a pool of NUL-ended replacements */
    uint32_t *charsmap;
    size_t charsmap_units;
    char *charsmap_pool;
    size_t charsmap_pool_len;
    float min_score, max_score;
    uint32_t max_piece_len;
    char *unk_surface;
};

/* One symbol of a word being merged: bytes [start, end) of the text. */
typedef struct tok_sym {
    int32_t id; /* -1: not a piece (tokenizer.model, before byte fallback) */
    int32_t prev, next;
    uint32_t start, end;
    bool frozen; /* a user-defined piece: never merged */
} tok_sym;

typedef struct tok_pair {
    double key; /* lower first: merge rank, or minus the merged piece's score */
    int32_t left, right, result;
    uint32_t left_len, right_len;
} tok_pair;

typedef struct tok_scratch {
    tok_sym *syms;
    size_t n_syms, cap_syms;
    tok_pair *heap;
    size_t n_heap, cap_heap;
} tok_scratch;

/* vocab.c */
bool tok_buf_append(tok_buf *b, const char *s, size_t n);
bool tok_ids_push(tok_ids *v, int32_t id);
bool tok_sym_push(tok_scratch *s, int32_t id, uint32_t start, uint32_t end, bool frozen);
void tok_scratch_free(tok_scratch *s);
/* Bytes in the UTF-8 character at s (1 for an invalid byte); *cp gets it (0xFFFD if invalid). */
size_t tok_utf8_next(const char *s, size_t n, uint32_t *cp);
bool tok_is_whitespace(uint32_t cp);
char *tok_strndup(const char *s, size_t n);
/* The byte of a byte-fallback piece "<0xNN>", or -1. */
int tok_parse_byte_piece(const char *s, size_t n);
setok_status tok_piece_set(setok_text_tokenizer *tok, int32_t id, const char *text, size_t len,
                           setok_error *err);
setok_status tok_vocab_index(setok_text_tokenizer *tok, setok_error *err);
int32_t tok_vocab_find(const setok_text_tokenizer *tok, const char *s, size_t n);
setok_status tok_merges_init(setok_text_tokenizer *tok, size_t n, setok_error *err);
bool tok_merge_add(setok_text_tokenizer *tok, int32_t left, int32_t right, int32_t rank,
                   int32_t result);
bool tok_merge_find(const setok_text_tokenizer *tok, int32_t left, int32_t right, int32_t *rank,
                    int32_t *result);
void tok_release(setok_text_tokenizer *tok);

/* bpe.c: merges the symbols in s (all linked, first at 0). by_score: tokenizer.model rules
 * (merge the adjacent pair whose concatenation is the best-scored piece), else merge ranks. */
bool tok_bpe_merge(const setok_text_tokenizer *tok, const char *text, tok_scratch *s,
                   bool by_score);

/* hf-json.c / hf-pipeline.c */
struct cJSON;
/* A JSON number that is an integer in [0, TOK_MAX_ID) (never cast out of range). */
bool tok_json_id(const struct cJSON *v, int32_t *out);
setok_status tok_hf_load(setok_text_tokenizer *tok, const char *text, size_t len, setok_error *err);
setok_status tok_hf_normalize(const setok_text_tokenizer *tok, const char *s, size_t n,
                              tok_buf *out);
setok_status tok_hf_encode(const setok_text_tokenizer *tok, const char *text, size_t len,
                           tok_ids *out, tok_scratch *s, setok_error *err);
/* *at_start: whether ids start the text; on return, whether the next id still would (the
 * leading-space rules have not fired yet). */
setok_status tok_hf_decode(const setok_text_tokenizer *tok, const int32_t *ids, size_t n,
                           bool *at_start, tok_buf *out, setok_error *err);

/* bytelevel.c */
/* The tok_split_kind of a Split pattern's regex; TOK_SPLIT_NONE when it is not one we know. */
int tok_split_pattern_kind(const char *regex);
/* out = s through normalizer op (NFC, LOWERCASE or WS_RUNS with content). */
bool tok_norm_unicode(int op, const char *s, size_t n, const char *content, tok_buf *out);
/* The next piece [*start, *end) of s at or after *pos under a Split pattern of kind; false at
 * the end. */
bool tok_split_next(int kind, const char *s, size_t n, size_t *pos, size_t *start, size_t *end);
/* out = s with every byte shown as its ByteLevel character. */
bool tok_bytelevel_map(const char *s, size_t n, tok_buf *out);
/* Appends the bytes a ByteLevel token stands for to bytes. */
bool tok_bytelevel_unmap(const char *t, size_t n, tok_buf *bytes);
/* Appends s to out with each invalid UTF-8 byte replaced by U+FFFD. */
bool tok_utf8_lossy(const char *s, size_t n, tok_buf *out);

/* clip-files.c: CLIP's vocab.json + merges.txt (no tokenizer.json) as tokenizer.json text */
bool tok_clip_files_present(const char *dir);
setok_status tok_clip_files_json(const char *dir, char **json, setok_error *err);

/* spm.c */
setok_status tok_spm_load(setok_text_tokenizer *tok, const uint8_t *data, size_t len,
                          setok_error *err);
setok_status tok_spm_encode(const setok_text_tokenizer *tok, const char *text, size_t len,
                            tok_ids *out, tok_scratch *s, setok_error *err);
setok_status tok_spm_decode(const setok_text_tokenizer *tok, const int32_t *ids, size_t n,
                            bool *at_start, tok_buf *out, setok_error *err);

#endif
