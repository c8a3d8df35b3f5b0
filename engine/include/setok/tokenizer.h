/* tokenizer.h — text tokenizers: Hugging Face tokenizer.json (model type BPE, as LLaMA, Vicuna
 * and LLaVA ship it) and SentencePiece tokenizer.model (BPE and Unigram).
 *
 * A tokenizer is immutable after loading; encode and decode may be called from any thread.
 * Buffers returned by encode and decode belong to the caller (setok_text_tokenizer_buffer_free).
 * A streaming decoder turns ids into text one at a time and only ever returns complete UTF-8. */
#ifndef SETOK_TOKENIZER_H
#define SETOK_TOKENIZER_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_text_tokenizer setok_text_tokenizer;
typedef struct setok_text_stream setok_text_stream;

/* path: a folder (tokenizer.json, else tokenizer.model), or a file: *.model is read as a
 * SentencePiece ModelProto, anything else as tokenizer.json. A malformed file is
 * SETOK_ERR_INPUT; a well-formed one using a feature not implemented is SETOK_ERR_UNSUPPORTED. */
SETOK_API setok_status setok_text_tokenizer_load(setok_text_tokenizer **out, const char *path,
                                       setok_error *err);
SETOK_API void setok_text_tokenizer_free(setok_text_tokenizer *tok);

/* text: len bytes of UTF-8 (an invalid byte is looked up on its own: <0xNN> or unk).
 * add_special_tokens applies the post-processor (tokenizer.json) or prepends BOS
 * (tokenizer.model). *ids gets a malloc'd array of *n_ids ids. */
SETOK_API setok_status setok_text_tokenizer_encode(const setok_text_tokenizer *tok, const char *text,
                                         size_t len, bool add_special_tokens, int32_t **ids,
                                         size_t *n_ids, setok_error *err);
/* *text gets a malloc'd, NUL-terminated UTF-8 string (a decoded NUL byte, <0x00>, ends it).
 * An id no token has (past the vocabulary, or a hole in it: a model's embedding table may
 * have more rows than the tokenizer has tokens) decodes to nothing, as in tokenizers; a
 * negative id is an input error. */
SETOK_API setok_status setok_text_tokenizer_decode(const setok_text_tokenizer *tok, const int32_t *ids,
                                         size_t n_ids, bool skip_special_tokens, char **text,
                                         setok_error *err);
SETOK_API void setok_text_tokenizer_buffer_free(void *buffer);

/* -1 when unknown. The string stays owned by tok. */
SETOK_API int32_t setok_text_tokenizer_token_to_id(const setok_text_tokenizer *tok, const char *token);
SETOK_API const char *setok_text_tokenizer_id_to_token(const setok_text_tokenizer *tok, int32_t id);
/* One more than the largest id, added tokens included. */
SETOK_API int32_t setok_text_tokenizer_vocab_size(const setok_text_tokenizer *tok);
/* -1 when the tokenizer has none. */
SETOK_API int32_t setok_text_tokenizer_bos_id(const setok_text_tokenizer *tok);
SETOK_API int32_t setok_text_tokenizer_eos_id(const setok_text_tokenizer *tok);
SETOK_API int32_t setok_text_tokenizer_unk_id(const setok_text_tokenizer *tok);
SETOK_API bool setok_text_tokenizer_is_special(const setok_text_tokenizer *tok, int32_t id);
/* Whether encoding puts a word boundary before the text, as SentencePiece's add_dummy_prefix,
 * a Prepend(U+2581) normalizer or a Metaspace pre-tokenizer that prepends do: then "x"
 * encodes as " x" does in the middle of a text, which is how a chat continues one. */
SETOK_API bool setok_text_tokenizer_adds_prefix_space(const setok_text_tokenizer *tok);

/* The concatenation of everything push and flush return equals decode() of all pushed ids. */
SETOK_API setok_status setok_text_stream_new(setok_text_stream **out, const setok_text_tokenizer *tok,
                                   bool skip_special_tokens, setok_error *err);
SETOK_API void setok_text_stream_free(setok_text_stream *stream);
/* *text: the complete text this id finished (often "", e.g. while byte-fallback bytes wait for
 * the rest of their character; always "" for an id no token has); owned by the stream, valid
 * until its next call. */
SETOK_API setok_status setok_text_stream_push(setok_text_stream *stream, int32_t id, const char **text,
                                    setok_error *err);
/* Whatever is still held (an unfinished byte sequence, as U+FFFD); the stream restarts. */
SETOK_API setok_status setok_text_stream_flush(setok_text_stream *stream, const char **text,
                                     setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
