/* test-strict-json.c — JSON where the format demands it (engine/io/json.c): what cJSON lets
 * pass and the engine refuses, in configs, safetensors headers and tokenizer files, each with
 * a message that names the file and the byte offset; and what must still load (every JSON
 * file of the shipped model, a diffusers -Infinity). Files are written into a temporary
 * folder. */
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "setok/config.h"
#include "setok/safetensors.h"
#include "setok/tokenizer.h"

static char root[512];

static const char *path_in(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, name);
    return path;
}

static const char *write_bytes(const char *name, const void *data, size_t n)
{
    const char *path = path_in(name);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
    return path;
}

static void expect(setok_status st, const setok_error *err, const char *what, const char *part1,
                   const char *part2)
{
    CHECK(st == SETOK_ERR_INPUT, "%s: status %d, expected an input error", what, (int)st);
    if (st != SETOK_OK) {
        CHECK(strstr(err->message, part1) != NULL, "%s: '%s' lacks '%s'", what, err->message,
              part1);
        CHECK(!part2 || strstr(err->message, part2) != NULL, "%s: '%s' lacks '%s'", what,
              err->message, part2);
        printf("ok   %s -> %s\n", what, err->message);
    }
}

/* A config file's text with one hostile byte sequence: refused at its offset. */
static void test_config(void)
{
    static const struct {
        const char *what, *text;
        size_t len; /* 0: strlen */
        const char *message;
    } cases[] = {
        {"NUL between values", "{\"a\": 1,\0 \"b\": 2}", 17, "at byte 8 (line 1, column 9)"},
        {"control byte between values", "{\"a\":\x01 1}", 9, "control character 0x01"},
        {"form feed between values", "{\f\"a\": 1}", 9, "at byte 1"},
        {"raw newline in a string", "{\"a\": \"x\ny\"}", 12, "raw control character 0x0A"},
        {"invalid UTF-8 in a string", "{\"a\": \"\xC3\x28\"}", 11, "byte 0xC3 inside a string"},
        {"surrogate encoded as UTF-8", "{\"\xED\xA0\x80\": 1}", 10, "not UTF-8"},
        {"NUL escape in a key", "{\"a\\u0000b\": 1}", 15, "\\u0000"},
        {"key given twice", "{\"hidden_size\": 1, \"hidden_size\": 2}", 0,
         "'hidden_size' appears twice"},
        {"key given twice, nested", "{\"a\": {\"x\": 1, \"y\": [{\"k\": 1, \"k\": 2}]}}", 0,
         "'k' appears twice"},
        {"text after the value", "{} x", 0, "at byte 3"},
        {"empty", "", 0, "empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        const char *path = write_bytes("config.json", cases[i].text, len);
        setok_config *cfg = NULL;
        setok_error err = {0};
        setok_status st = setok_config_load(&cfg, path, &err);
        setok_config_free(cfg);
        expect(st, &err, cases[i].what, "config.json", cases[i].message);
    }
    setok_config *cfg = NULL;
    setok_error err = {0};
    const char *ok =
        "{\"lambda_min_clipped\": 1e999,\r\n\t\"s\": \"caf\xC3\xA9 \\u00e9 \\\"q\\\"\"}";
    CHECK(setok_config_load(&cfg, write_bytes("config.json", ok, strlen(ok)), &err) == SETOK_OK,
          "spaces, tabs, CR LF, UTF-8, escapes and an overflowing number load: %s", err.message);
    setok_config_free(cfg);
}

/* A safetensors file: 8-byte length, header, data. */
static const char *write_safetensors(const char *header, size_t n, size_t data_bytes)
{
    size_t total = 8 + n + data_bytes;
    unsigned char *buf = calloc(1, total);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, n);
    const char *path = write_bytes("model.safetensors", buf, total);
    free(buf);
    return path;
}

static void test_safetensors(void)
{
    static const char entry[] = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    char header[256];
    static const struct {
        const char *what;
        size_t at;    /* where the byte goes: inserted there */
        char byte;
        bool append;  /* after the object, as padding */
        const char *message;
    } cases[] = {
        {"raw NUL between header values", 5, '\0', false, "at header offset 5"},
        {"control byte between header values", 1, '\x1f', false, "control character 0x1F"},
        {"NUL as padding", 0, '\0', true, "control character 0x00 between values"},
        {"tab as padding", 0, '\t', true, "byte 0x09 after the JSON object"},
        {"newline as padding", 0, '\n', true, "only spaces may pad it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(entry);
        if (cases[i].append) {
            memcpy(header, entry, n);
            header[n] = cases[i].byte;
            memcpy(header + n + 1, "  ", 2);
            n += 3;
        } else {
            memcpy(header, entry, cases[i].at);
            header[cases[i].at] = cases[i].byte;
            memcpy(header + cases[i].at + 1, entry + cases[i].at, n - cases[i].at);
            n += 1;
        }
        setok_safetensors *st = NULL;
        setok_error err = {0};
        setok_status s = setok_safetensors_open(&st, write_safetensors(header, n, 8), &err);
        setok_safetensors_close(st);
        expect(s, &err, cases[i].what, "model.safetensors", cases[i].message);
    }
    /* space padding is what the format writes */
    size_t n = strlen(entry);
    memcpy(header, entry, n);
    memcpy(header + n, "      ", 6);
    setok_safetensors *st = NULL;
    setok_error err = {0};
    CHECK(setok_safetensors_open(&st, write_safetensors(header, n + 6, 8), &err) == SETOK_OK,
          "space padding loads: %s", err.message);
    setok_safetensors_close(st);
}

static void test_tokenizer(void)
{
    static const struct {
        const char *what, *text;
        size_t len;
        const char *message;
    } cases[] = {
        {"tokenizer.json with a NUL between values",
         "{\"model\": {\"vocab\": {}, \"merges\": []}\0}", 40, "at byte 37"},
        {"tokenizer.json with a NUL escape in the vocab",
         "{\"model\": {\"vocab\": {\"\\u0000\": 0}, \"merges\": []}}", 50, "\\u0000"},
        {"tokenizer.json naming a piece twice",
         "{\"model\": {\"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": []}}", 52, "'a' appears twice"},
        {"tokenizer.json with a huge id", "{\"model\": {\"vocab\": {\"a\": 16777215}, "
         "\"merges\": []}}", 51, "ids must be below 1026"},
        {"tokenizer.json with a fractional id", "{\"model\": {\"vocab\": {\"a\": 1.5}, "
         "\"merges\": []}}", 46, "must be an integer id"},
        {"tokenizer.json with an id beyond int", "{\"model\": {\"vocab\": {\"a\": 1e300}, "
         "\"merges\": []}}", 48, "must be an integer id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *path = write_bytes("tokenizer.json", cases[i].text, cases[i].len);
        setok_text_tokenizer *tok = NULL;
        setok_error err = {0};
        setok_status st = setok_text_tokenizer_load(&tok, path, &err);
        setok_text_tokenizer_free(tok);
        expect(st, &err, cases[i].what, "tokenizer.json", cases[i].message);
    }
    /* CLIP's files: vocab.json is JSON too */
    write_bytes("merges.txt", "#version: 0.2\n", 14);
    static const char vocab[] = "{\"<|startoftext|>\": 0,\x02 \"<|endoftext|>\": 1}";
    write_bytes("vocab.json", vocab, sizeof vocab - 1);
    remove(path_in("tokenizer.json"));
    setok_text_tokenizer *tok = NULL;
    setok_error err = {0};
    setok_status st = setok_text_tokenizer_load(&tok, root, &err);
    setok_text_tokenizer_free(tok);
    expect(st, &err, "vocab.json with a control byte", "vocab.json", "at byte 22");
    remove(path_in("vocab.json"));
    remove(path_in("merges.txt"));
}

/* Every JSON file of the shipped model passes the strict reader. */
static void test_shipped(void)
{
    const char *src = getenv("SETOK_SOURCE_ROOT");
    if (!src) {
        printf("skip shipped model: SETOK_SOURCE_ROOT is not set\n");
        return;
    }
    static const char *const files[] = {
        "setokim.json", "vision/config.json", "vision/preprocessor_config.json",
        "setok/config.json", "llm/config.json", "llm/generation_config.json",
        "llm/tokenizer_config.json", "projector_in/config.json", "projector_out/config.json",
        "projector_seg/config.json", "mapper/config.json", "unet/config.json", "vae/config.json",
        "mask_decoder/config.json", "scheduler/scheduler_config.json",
    };
    char path[1024];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/data/models/setokim-tiny/%s", src, files[i]);
        if (access(path, R_OK) != 0)
            continue; /* the model may be retrained with fewer files */
        setok_config *cfg = NULL;
        setok_error err = {0};
        CHECK(setok_config_load(&cfg, path, &err) == SETOK_OK, "%s", err.message);
        setok_config_free(cfg);
    }
    snprintf(path, sizeof path, "%s/data/models/setokim-tiny/llm", src);
    setok_text_tokenizer *tok = NULL;
    setok_error err = {0};
    CHECK(access(path, R_OK) != 0 || setok_text_tokenizer_load(&tok, path, &err) == SETOK_OK,
          "%s", err.message);
    setok_text_tokenizer_free(tok);
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/setok-test-strict-json-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_config();
    test_safetensors();
    test_tokenizer();
    test_shipped();
    nftw(root, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
