/* fuzz-text.h — what the tokenizer harnesses do with a tokenizer that loaded: encode a few
 * texts (ASCII, accents, CJK, emoji, an invalid byte, control characters, special-looking
 * tokens) with and without special tokens, decode the ids back, stream them, and decode and
 * look up every id of a small vocabulary. */
#ifndef SETOK_FUZZ_TEXT_H
#define SETOK_FUZZ_TEXT_H

#include "setok/tokenizer.h"

void fuzz_exercise_tokenizer(const setok_text_tokenizer *tok);
/* Loads the tokenizer at path (a file or a folder) and exercises it when it loads. */
void fuzz_load_tokenizer(const char *path);

#endif
