/* clip-files.c — a CLIP tokenizer from the slow-tokenizer files that Stable Diffusion folders ship
 * (tokenizer/vocab.json + merges.txt + tokenizer_config.json, no tokenizer.json): the same
 * pipeline transformers' CLIPTokenizer builds (NFC, whitespace runs to one space, lowercase;
 * CLIP's Split pattern then ByteLevel; BPE with "</w>"; <|startoftext|> ... <|endoftext|>),
 * written as tokenizer.json text for the tokenizer.json loader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "io/json.h"
#include "tokenizer-impl.h"

#define CLIP_MAX_FILE_BYTES ((size_t)256 << 20)

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f) {
        return NULL;
    }
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
        (uint64_t)sb.st_size > CLIP_MAX_FILE_BYTES) {
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (buf && fread(buf, 1, n, f) != n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

bool tok_clip_files_present(const char *dir)
{
    char path[4096];
    struct stat sb;
    const char *names[] = {"vocab.json", "merges.txt"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            return false;
        }
    }
    return true;
}

static cJSON *added(const char *content, int id)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", id);
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddBoolToObject(t, "single_word", false);
    cJSON_AddBoolToObject(t, "lstrip", false);
    cJSON_AddBoolToObject(t, "rstrip", false);
    cJSON_AddBoolToObject(t, "normalized", false);
    cJSON_AddBoolToObject(t, "special", true);
    return t;
}

static cJSON *typed(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

/* The tokenizer_config.json class must be a CLIP tokenizer (when the file exists). */
static setok_status check_class(const char *dir, setok_error *err)
{
    char path[4096];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *text = slurp(path, &len);
    if (!text) {
        return SETOK_OK;
    }
    cJSON *root = NULL;
    setok_status st = setok_json_parse(text, len, path, SETOK_JSON_CONFIG_MAX_VALUES, &root, err);
    free(text);
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "tokenizer_class");
    if (st != SETOK_OK) {
        return st;
    } else if (cJSON_IsString(cls) && strncmp(cls->valuestring, "CLIPTokenizer", 13) != 0) {
        st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: tokenizer_class '%s' without a "
                        "tokenizer.json is not supported (only CLIPTokenizer's vocab.json + "
                        "merges.txt)", path, cls->valuestring);
    }
    cJSON_Delete(root);
    return st;
}

setok_status tok_clip_files_json(const char *dir, char **json, setok_error *err)
{
    char vpath[4096], mpath[4096];
    snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
    snprintf(mpath, sizeof mpath, "%s/merges.txt", dir);
    setok_status st = check_class(dir, err);
    if (st != SETOK_OK) {
        return st;
    }
    size_t vlen = 0, mlen = 0;
    char *vtext = slurp(vpath, &vlen), *mtext = slurp(mpath, &mlen);
    cJSON *vocab = NULL;
    cJSON *root = cJSON_CreateObject(), *model = NULL, *merges = NULL;
    if (!vtext || !mtext) {
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: cannot read (or larger than 256 MiB)",
                        vtext ? mpath : vpath);
    } else {
        st = setok_json_parse(vtext, vlen, vpath, SETOK_JSON_TOKENIZER_MAX_VALUES, &vocab, err);
    }
    if (st == SETOK_OK && !cJSON_IsObject(vocab)) {
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: the top level must be a JSON object", vpath);
    } else if (st == SETOK_OK && !root) {
        st = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", dir);
    }
    int32_t bos = -1, eos = -1;
    if (st == SETOK_OK &&
        (!tok_json_id(cJSON_GetObjectItemCaseSensitive(vocab, "<|startoftext|>"), &bos) ||
         !tok_json_id(cJSON_GetObjectItemCaseSensitive(vocab, "<|endoftext|>"), &eos))) {
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: no <|startoftext|> / <|endoftext|> entries "
                        "with integer ids", vpath);
    }
    size_t lines = 0;
    for (const char *c = mtext; st == SETOK_OK && c && *c; c++)
        lines += *c == '\n';
    /* each merge becomes a value of the tokenizer.json text built here */
    if (st == SETOK_OK && lines >= SETOK_JSON_TOKENIZER_MAX_VALUES) {
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: %zu lines, more merges than the %zu a "
                        "tokenizer may have", mpath, lines, SETOK_JSON_TOKENIZER_MAX_VALUES);
    }
    if (st == SETOK_OK) {
        model = typed("BPE");
        merges = cJSON_CreateArray();
        cJSON_AddItemToObject(root, "model", model);
        cJSON_AddStringToObject(model, "unk_token", "<|endoftext|>");
        cJSON_AddStringToObject(model, "continuing_subword_prefix", "");
        cJSON_AddStringToObject(model, "end_of_word_suffix", "</w>");
        cJSON_AddItemToObject(model, "vocab", cJSON_Duplicate(vocab, true));
        cJSON_AddItemToObject(model, "merges", merges);
        /* merges.txt: an optional "#version" line, then "left right" per line */
        int line_no = 0;
        for (char *line = mtext; line && *line && st == SETOK_OK; line_no++) {
            char *nl = strchr(line, '\n');
            if (nl) {
                *nl = '\0';
            }
            size_t n = strlen(line);
            if (n && line[n - 1] == '\r') {
                line[--n] = '\0';
            }
            if (n && !(line_no == 0 && line[0] == '#')) {
                char *sp = strchr(line, ' ');
                if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' ')) {
                    st = setok_fail(err, SETOK_ERR_INPUT, "%s: line %d is not 'left right'",
                                    mpath, line_no + 1);
                } else {
                    cJSON_AddItemToArray(merges, cJSON_CreateString(line));
                }
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    if (st == SETOK_OK) {
        cJSON *list = cJSON_AddArrayToObject(root, "added_tokens");
        cJSON_AddItemToArray(list, added("<|startoftext|>", bos));
        cJSON_AddItemToArray(list, added("<|endoftext|>", eos));
        cJSON *norm = typed("Sequence"), *ns = cJSON_AddArrayToObject(norm, "normalizers");
        cJSON_AddItemToArray(ns, typed("NFC"));
        cJSON *ws = typed("Replace");
        cJSON *pat = cJSON_AddObjectToObject(ws, "pattern");
        cJSON_AddStringToObject(pat, "Regex", "\\s+");
        cJSON_AddStringToObject(ws, "content", " ");
        cJSON_AddItemToArray(ns, ws);
        cJSON_AddItemToArray(ns, typed("Lowercase"));
        cJSON_AddItemToObject(root, "normalizer", norm);
        cJSON *pre = typed("Sequence"), *ps = cJSON_AddArrayToObject(pre, "pretokenizers");
        cJSON *split = typed("Split");
        pat = cJSON_AddObjectToObject(split, "pattern");
        cJSON_AddStringToObject(pat, "Regex",
                                "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|"
                                "[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+");
        cJSON_AddStringToObject(split, "behavior", "Removed");
        cJSON_AddBoolToObject(split, "invert", true);
        cJSON_AddItemToArray(ps, split);
        cJSON *bl = typed("ByteLevel");
        cJSON_AddBoolToObject(bl, "add_prefix_space", false);
        cJSON_AddBoolToObject(bl, "use_regex", true);
        cJSON_AddItemToArray(ps, bl);
        cJSON_AddItemToObject(root, "pre_tokenizer", pre);
        cJSON *post = typed("RobertaProcessing");
        cJSON *sep = cJSON_AddArrayToObject(post, "sep"), *cls = cJSON_AddArrayToObject(post, "cls");
        cJSON_AddItemToArray(sep, cJSON_CreateString("<|endoftext|>"));
        cJSON_AddItemToArray(sep, cJSON_CreateNumber(eos));
        cJSON_AddItemToArray(cls, cJSON_CreateString("<|startoftext|>"));
        cJSON_AddItemToArray(cls, cJSON_CreateNumber(bos));
        cJSON_AddItemToObject(root, "post_processor", post);
        cJSON_AddItemToObject(root, "decoder", typed("ByteLevel"));
        *json = cJSON_PrintUnformatted(root);
        if (!*json) {
            st = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", dir);
        }
    }
    cJSON_Delete(root);
    cJSON_Delete(vocab);
    free(vtext);
    free(mtext);
    return st;
}
