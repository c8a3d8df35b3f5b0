/* fuzz-text.c — exercising a loaded text tokenizer (fuzz-text.h). */
#include "fuzz-text.h"

#include <string.h>

static void round_trip(const setok_text_tokenizer *tok, const char *text, size_t len)
{
    setok_error err;
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (setok_text_tokenizer_encode(tok, text, len, special, &ids, &n, &err) != SETOK_OK)
            continue;
        char *back = NULL;
        if (setok_text_tokenizer_decode(tok, ids, n, !special, &back, &err) == SETOK_OK)
            setok_text_tokenizer_buffer_free(back);
        setok_text_stream *stream = NULL;
        if (setok_text_stream_new(&stream, tok, !special, &err) == SETOK_OK) {
            const char *piece;
            for (size_t i = 0; i < n; i++)
                if (setok_text_stream_push(stream, ids[i], &piece, &err) != SETOK_OK)
                    break;
            setok_text_stream_flush(stream, &piece, &err);
            setok_text_stream_free(stream);
        }
        setok_text_tokenizer_buffer_free(ids);
    }
}

void fuzz_load_tokenizer(const char *path)
{
    setok_error err;
    setok_text_tokenizer *tok = NULL;
    if (setok_text_tokenizer_load(&tok, path, &err) != SETOK_OK)
        return;
    fuzz_exercise_tokenizer(tok);
    setok_text_tokenizer_free(tok);
}

void fuzz_exercise_tokenizer(const setok_text_tokenizer *tok)
{
    static const char *const texts[] = {
        "Hello world! What colour is the circle?",
        "  leading and   inner  spaces\t\ttabs\nnewlines  ",
        "caf\xC3\xA9 na\xC3\xAFve \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 \xE2\x96\x81x",
        "bad \xFF byte \xC3 cut",
        "<s> </s> <unk> <image> [Img] <seg> <|endoftext|> <0x41>",
        "",
        "a",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        round_trip(tok, texts[i], strlen(texts[i]));
    round_trip(tok, "nul\0inside", 10);

    setok_error err;
    int32_t vocab = setok_text_tokenizer_vocab_size(tok);
    int32_t n = vocab < 600 ? vocab : 600;
    int32_t ids[600];
    for (int32_t id = 0; id < n; id++) {
        ids[id] = id;
        const char *piece = setok_text_tokenizer_id_to_token(tok, id);
        if (piece)
            setok_text_tokenizer_token_to_id(tok, piece);
        setok_text_tokenizer_is_special(tok, id);
    }
    for (int skip = 0; skip < 2; skip++) {
        char *text = NULL;
        if (setok_text_tokenizer_decode(tok, ids, (size_t)n, skip, &text, &err) == SETOK_OK)
            setok_text_tokenizer_buffer_free(text);
    }
    int32_t bad[2] = {vocab, -1};
    char *text = NULL;
    if (setok_text_tokenizer_decode(tok, bad, 2, false, &text, &err) == SETOK_OK)
        __builtin_trap(); /* ids out of range are an error */
    setok_text_tokenizer_bos_id(tok);
    setok_text_tokenizer_eos_id(tok);
    setok_text_tokenizer_unk_id(tok);
}
