/* test-tokenizer.c — the text tokenizer on a tiny hand-written LLaMA-style tokenizer.json: BPE
 * merges, byte fallback, the BOS template, decoding, the streaming decoder holding bytes until
 * they form a character, and malformed files refused as input errors. The comparison against
 * tokenizers / sentencepiece on large corpora is tests/reference/test_tokenizer.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "setok/tokenizer.h"

#include "check.h"

/* ▁ is U+2581; € is E2 82 AC and is not in the vocab, so it falls back to bytes. */
static const char *tiny_json =
    "{\"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\": true, "
    "\"normalized\": false}],"
    "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
    "{\"type\": \"Prepend\", \"prepend\": \"\xE2\x96\x81\"},"
    "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xE2\x96\x81\"}]},"
    "\"pre_tokenizer\": null,"
    "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": ["
    "{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\"}}],"
    "\"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}},"
    "\"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
    "{\"type\": \"Replace\", \"pattern\": {\"String\": \"\xE2\x96\x81\"}, \"content\": \" \"},"
    "{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"},"
    "{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},"
    "\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true,"
    "\"fuse_unk\": true, \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0xE2>\": 3,"
    "\"<0x82>\": 4, \"<0xAC>\": 5, \"\xE2\x96\x81\": 6, \"h\": 7, \"e\": 8, \"l\": 9, \"o\": 10,"
    "\"\xE2\x96\x81h\": 11, \"ll\": 12, \"\xE2\x96\x81he\": 13, \"llo\": 14,"
    "\"\xE2\x96\x81hello\": 15},"
    "\"merges\": [\"\xE2\x96\x81 h\", [\"l\", \"l\"], \"\xE2\x96\x81h e\", \"ll o\","
    "\"\xE2\x96\x81he llo\"]}}";

static char *write_temp(const char *suffix, const void *data, size_t len)
{
    static int counter;
    char *path = malloc(256);
    snprintf(path, 256, "/tmp/setok-test-tokenizer-%d-%d%s", (int)getpid(), counter++, suffix);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
    return path;
}

static void test_tiny(void)
{
    char *path = write_temp(".json", tiny_json, strlen(tiny_json));
    setok_text_tokenizer *tok = NULL;
    setok_error err = {0};
    CHECK(setok_text_tokenizer_load(&tok, path, &err) == SETOK_OK, "load: %s", err.message);
    unlink(path);
    free(path);
    if (!tok) {
        return;
    }
    CHECK(setok_text_tokenizer_vocab_size(tok) == 16, "vocab size");
    CHECK(setok_text_tokenizer_bos_id(tok) == 1 && setok_text_tokenizer_eos_id(tok) == 2 &&
          setok_text_tokenizer_unk_id(tok) == 0, "bos/eos/unk ids");
    CHECK(setok_text_tokenizer_token_to_id(tok, "llo") == 14, "token_to_id");
    CHECK(strcmp(setok_text_tokenizer_id_to_token(tok, 15), "\xE2\x96\x81hello") == 0,
          "id_to_token");

    const char *text = "hello \xE2\x82\xAC";
    int32_t want[] = {1, 15, 6, 3, 4, 5};
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(setok_text_tokenizer_encode(tok, text, strlen(text), true, &ids, &n, &err) == SETOK_OK,
          "encode: %s", err.message);
    CHECK(n == 6 && memcmp(ids, want, sizeof want) == 0, "ids of 'hello €' (%zu ids)", n);

    char *back = NULL;
    CHECK(setok_text_tokenizer_decode(tok, want, 6, true, &back, &err) == SETOK_OK, "decode");
    CHECK(back && strcmp(back, text) == 0, "decode gives '%s'", back ? back : "(null)");
    setok_text_tokenizer_buffer_free(back);
    CHECK(setok_text_tokenizer_decode(tok, want, 6, false, &back, &err) == SETOK_OK &&
          strcmp(back, "<s> hello \xE2\x82\xAC") == 0, "decode keeping <s>");
    setok_text_tokenizer_buffer_free(back);

    setok_text_stream *s = NULL;
    CHECK(setok_text_stream_new(&s, tok, true, &err) == SETOK_OK, "stream");
    /* the byte-fallback run of the euro sign is held until it ends (here: the flush) */
    const char *expect[] = {"", "hello", " ", "", "", ""};
    for (int i = 0; s && i < 6; i++) {
        const char *chunk = NULL;
        CHECK(setok_text_stream_push(s, want[i], &chunk, &err) == SETOK_OK &&
              strcmp(chunk, expect[i]) == 0, "stream chunk %d is '%s'", i, chunk ? chunk : "");
    }
    const char *chunk = NULL;
    CHECK(s && setok_text_stream_flush(s, &chunk, &err) == SETOK_OK &&
          strcmp(chunk, "\xE2\x82\xAC") == 0, "the flush gives the held euro sign");
    CHECK(s && setok_text_stream_push(s, 99, &chunk, &err) == SETOK_OK && !strcmp(chunk, ""),
          "an id past the vocabulary streams as nothing");
    CHECK(s && setok_text_stream_push(s, -1, &chunk, &err) == SETOK_ERR_INPUT,
          "a negative id in the stream");
    setok_text_stream_free(s);

    /* rows of a model's vocabulary that no token names decode to nothing, as in tokenizers */
    int32_t holes[] = {15, 16, 4000, 11};
    CHECK(setok_text_tokenizer_decode(tok, holes, 4, true, &back, &err) == SETOK_OK &&
              strcmp(back, "hello h") == 0,
          "ids past the vocabulary decode to nothing: '%s'", back ? back : "(null)");
    setok_text_tokenizer_buffer_free(back);
    CHECK(!setok_text_tokenizer_id_to_token(tok, 16), "no token for an id past the vocabulary");
    int32_t bad = -3;
    CHECK(setok_text_tokenizer_decode(tok, &bad, 1, true, &back, &err) == SETOK_ERR_INPUT,
          "decode of a negative id");
    setok_text_tokenizer_buffer_free(ids);
    setok_text_tokenizer_free(tok);
}

static void test_malformed(void)
{
    static const char *jsons[] = {
        "{",
        "[]",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0.5}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}}",
    };
    for (size_t i = 0; i < sizeof jsons / sizeof jsons[0]; i++) {
        char *path = write_temp(".json", jsons[i], strlen(jsons[i]));
        setok_text_tokenizer *tok = NULL;
        setok_error err = {0};
        setok_status st = setok_text_tokenizer_load(&tok, path, &err);
        CHECK(st == SETOK_ERR_INPUT && strstr(err.message, path) && !tok,
              "json %zu: status %d, '%s'", i, (int)st, err.message);
        unlink(path);
        free(path);
    }
    static const unsigned char models[][8] = {{0x0a, 0x7f, 1}, {0xff, 0xff, 0xff}, {0x0a, 0}};
    for (size_t i = 0; i < 3; i++) {
        char *path = write_temp(".model", models[i], 3);
        setok_text_tokenizer *tok = NULL;
        setok_error err = {0};
        setok_status st = setok_text_tokenizer_load(&tok, path, &err);
        CHECK(st == SETOK_ERR_INPUT && !tok, "model %zu: status %d, '%s'", i, (int)st,
              err.message);
        unlink(path);
        free(path);
    }
    setok_text_tokenizer *tok = NULL;
    CHECK(setok_text_tokenizer_load(&tok, "/nonexistent/tokenizer.json", NULL) == SETOK_ERR_INPUT,
          "missing file");
}

int main(void)
{
    test_tiny();
    test_malformed();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
