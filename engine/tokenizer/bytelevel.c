/* bytelevel.c — the tokenizer.json pieces that byte-level BPE tokenizers (CLIP's) use: the NFC
 * and Lowercase normalizers, Replace of the regex \s+, CLIP's Split pattern, the ByteLevel
 * pre-tokenizer's byte-to-character map and the ByteLevel decoder. Unicode normalization, case
 * mapping and general categories come from libunistring. */
#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>

#include "tokenizer-impl.h"

/* CLIP's pre-tokenizer pattern as tokenizer.json spells it (after JSON unescaping), with and
 * without the two special-token alternatives that transformers puts in front. */
static const char CLIP_PATTERN_SPECIALS[] =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
    "[^\\s\\p{L}\\p{N}]+";
static const char CLIP_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

int tok_split_pattern_kind(const char *regex)
{
    if (!strcmp(regex, CLIP_PATTERN_SPECIALS)) {
        return TOK_SPLIT_CLIP_SPECIALS;
    }
    if (!strcmp(regex, CLIP_PATTERN)) {
        return TOK_SPLIT_CLIP;
    }
    return TOK_SPLIT_NONE;
}

// ----------------------------------------------------------------------------
// normalizers

static bool is_letter(uint32_t cp)
{
    return cp < 0x80 ? ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
                     : uc_is_general_category(cp, UC_CATEGORY_L);
}

static bool is_number(uint32_t cp)
{
    return cp < 0x80 ? (cp >= '0' && cp <= '9') : uc_is_general_category(cp, UC_CATEGORY_N);
}

bool tok_norm_unicode(int op, const char *s, size_t n, const char *content, tok_buf *out)
{
    out->len = 0;
    if (!tok_buf_append(out, "", 0)) {
        return false;
    }
    if (op == TOK_NORM_NFC && n > 0) {
        size_t len = 0;
        uint8_t *r = u8_normalize(UNINORM_NFC, (const uint8_t *)s, n, NULL, &len);
        bool ok = r && tok_buf_append(out, (const char *)r, len);
        free(r);
        return ok;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_next(s + i, n - i, &cp);
        bool ok = true;
        if (op == TOK_NORM_WS_RUNS && tok_is_whitespace(cp)) {
            /* a run of whitespace becomes content, as Replace(Regex("\s+"), content) */
            while (i < n) {
                l = tok_utf8_next(s + i, n - i, &cp);
                if (!tok_is_whitespace(cp)) {
                    break;
                }
                i += l;
            }
            ok = tok_buf_append(out, content, strlen(content));
            if (!ok) {
                return false;
            }
            continue;
        }
        if (op == TOK_NORM_LOWERCASE && cp >= 0x80) {
            /* one character at a time, as Rust's char::to_lowercase (no Final_Sigma context) */
            size_t len = 0;
            uint8_t *r = u8_tolower((const uint8_t *)s + i, l, NULL, NULL, NULL, &len);
            ok = r && tok_buf_append(out, (const char *)r, len);
            free(r);
        } else if (op == TOK_NORM_LOWERCASE && cp >= 'A' && cp <= 'Z') {
            char c = (char)(cp + 32);
            ok = tok_buf_append(out, &c, 1);
        } else {
            ok = tok_buf_append(out, s + i, l);
        }
        if (!ok) {
            return false;
        }
        i += l;
    }
    return true;
}

// ----------------------------------------------------------------------------
// CLIP's Split pattern (behavior Removed, invert): the matches are the pieces, the rest
// (whitespace) is dropped. Alternatives are tried in order at each position, as a leftmost-first
// regex does.

static size_t clip_match(const char *s, size_t n, bool specials)
{
    static const char *const literal[] = {"<|startoftext|>", "<|endoftext|>"};
    for (int k = 0; specials && k < 2; k++) {
        size_t len = strlen(literal[k]);
        if (len <= n && !memcmp(s, literal[k], len)) {
            return len;
        }
    }
    static const char *const contraction[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (int k = 0; k < 7; k++) {
        size_t len = strlen(contraction[k]);
        if (len <= n && !memcmp(s, contraction[k], len)) {
            return len;
        }
    }
    uint32_t cp;
    size_t l = tok_utf8_next(s, n, &cp), end = l;
    if (is_letter(cp)) {
        while (end < n) {
            l = tok_utf8_next(s + end, n - end, &cp);
            if (!is_letter(cp)) {
                break;
            }
            end += l;
        }
        return end;
    }
    if (is_number(cp)) {
        return l;
    }
    while (end < n) {
        l = tok_utf8_next(s + end, n - end, &cp);
        if (tok_is_whitespace(cp) || is_letter(cp) || is_number(cp)) {
            break;
        }
        end += l;
    }
    return end;
}

/* GPT-2's pattern, which ByteLevel(use_regex) applies: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|
 * ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ — every character is in some match. */
static size_t gpt2_match(const char *s, size_t n)
{
    static const char *const contraction[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (int k = 0; k < 7; k++) {
        size_t len = strlen(contraction[k]);
        if (len <= n && !memcmp(s, contraction[k], len)) {
            return len;
        }
    }
    uint32_t cp;
    size_t at = s[0] == ' ' && n > 1 ? 1 : 0, l = tok_utf8_next(s + at, n - at, &cp);
    if (!tok_is_whitespace(cp)) {
        /* ( ?)\p{L}+, ( ?)\p{N}+ or ( ?)[^\s\p{L}\p{N}]+: the class of the first character */
        int cls = is_letter(cp) ? 0 : is_number(cp) ? 1 : 2;
        size_t end = at + l;
        while (end < n) {
            l = tok_utf8_next(s + end, n - end, &cp);
            int c = is_letter(cp) ? 0 : is_number(cp) ? 1 : tok_is_whitespace(cp) ? 3 : 2;
            if (c != cls) {
                break;
            }
            end += l;
        }
        return end;
    }
    /* a whitespace run; before a non-space character it gives up its last character */
    size_t end = 0, last = 0;
    while (end < n) {
        l = tok_utf8_next(s + end, n - end, &cp);
        if (!tok_is_whitespace(cp)) {
            break;
        }
        last = end;
        end += l;
    }
    return end < n && last > 0 ? last : end;
}

bool tok_split_next(int kind, const char *s, size_t n, size_t *pos, size_t *start, size_t *end)
{
    if (kind == TOK_SPLIT_GPT2) {
        if (*pos >= n) {
            return false;
        }
        *start = *pos;
        *end = *pos + gpt2_match(s + *pos, n - *pos);
        *pos = *end;
        return true;
    }
    while (*pos < n) {
        uint32_t cp;
        size_t l = tok_utf8_next(s + *pos, n - *pos, &cp);
        if (tok_is_whitespace(cp)) {
            *pos += l;
            continue;
        }
        *start = *pos;
        *end = *pos + clip_match(s + *pos, n - *pos, kind == TOK_SPLIT_CLIP_SPECIALS);
        *pos = *end;
        return true;
    }
    return false;
}

// ----------------------------------------------------------------------------
// ByteLevel: every byte is shown as a printable character (GPT-2's bytes_to_unicode): printable
// Latin-1 bytes stand for themselves, the other 68 become U+0100 onwards in byte order.

static uint32_t byte_char(uint8_t b)
{
    if (b <= 0x20) {
        return 0x100 + b;
    }
    if (b >= 0x7F && b <= 0xA0) {
        return 0x100 + 33 + (uint32_t)(b - 0x7F);
    }
    if (b == 0xAD) {
        return 0x100 + 33 + 34;
    }
    return b;
}

static int char_byte(uint32_t cp)
{
    if (cp < 0x100) {
        return (cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) ? -1 : (int)cp;
    }
    if (cp < 0x100 + 33) {
        return (int)(cp - 0x100);
    }
    if (cp < 0x100 + 33 + 34) {
        return (int)(cp - 0x100 - 33 + 0x7F);
    }
    return cp == 0x100 + 33 + 34 ? 0xAD : -1;
}

bool tok_bytelevel_map(const char *s, size_t n, tok_buf *out)
{
    out->len = 0;
    if (!tok_buf_append(out, "", 0)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = byte_char((uint8_t)s[i]);
        char u[2];
        size_t len = 1;
        if (cp < 0x80) {
            u[0] = (char)cp;
        } else {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
            len = 2;
        }
        if (!tok_buf_append(out, u, len)) {
            return false;
        }
    }
    return true;
}

bool tok_bytelevel_unmap(const char *t, size_t n, tok_buf *bytes)
{
    size_t mark = bytes->len;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_next(t + i, n - i, &cp);
        int b = char_byte(cp);
        if (b < 0) {
            /* a character outside the map: the token's own bytes, as tokenizers does */
            bytes->len = mark;
            return tok_buf_append(bytes, t, n);
        }
        char c = (char)b;
        if (!tok_buf_append(bytes, &c, 1)) {
            return false;
        }
        i += l;
    }
    return true;
}

bool tok_utf8_lossy(const char *s, size_t n, tok_buf *out)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_next(s + i, n - i, &cp);
        bool bad = cp == 0xFFFD && l == 1 && (uint8_t)s[i] >= 0x80;
        if (!tok_buf_append(out, bad ? "\xEF\xBF\xBD" : s + i, bad ? 3 : l)) {
            return false;
        }
        i += l;
    }
    return true;
}
