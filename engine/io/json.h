/* json.h — strict JSON for the engine's readers (engine-private).
 *
 * cJSON is lenient where RFC 8259 is not: it skips every byte up to 0x20 as whitespace (a
 * raw NUL or other control byte between values passes), keeps raw control characters and
 * invalid UTF-8 inside strings, cuts a string at a \u0000 escape, and keeps both values of
 * a key that appears twice (Python's json keeps the last, cJSON's lookups find the first).
 * These functions refuse all of that before the tree is used, and bound the number of
 * values (cJSON's tree costs about 64 bytes per value), with messages that name the byte
 * offset. */
#ifndef SETOK_IO_JSON_H
#define SETOK_IO_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "setok/error.h"

/* Values a configuration file may hold (config.json, setokim.json, index.json, ...). */
#define SETOK_JSON_CONFIG_MAX_VALUES ((size_t)4 << 20)
/* ... and a tokenizer.json or vocab.json (a 262k vocabulary with its merges is ~2M). */
#define SETOK_JSON_TOKENIZER_MAX_VALUES ((size_t)8 << 20)

/* The first place in text[0..n) where it breaks strict JSON in a way cJSON would let pass:
 * a control byte outside a string other than space, tab, CR and LF; a raw control byte,
 * invalid UTF-8 or a \u0000 escape inside a string. *offset gets its byte offset and what
 * (what_size bytes) says what is there. False when there is none. *values gets an upper
 * bound of the values the text holds. */
bool setok_json_find_issue(const char *text, size_t n, size_t *offset, char *what,
                           size_t what_size, size_t *values);

/* Parses text[0..n) (which need not be NUL-terminated) as one strict JSON value with at
 * most max_values values, nothing but JSON whitespace after it, and no key twice in an
 * object. *out gets the tree (cJSON_Delete it). Errors (SETOK_ERR_INPUT) name name and
 * the byte offset, line and column: "NAME: invalid JSON at byte 12 (line 2, column 3):
 * ...". */
setok_status setok_json_parse(const char *text, size_t n, const char *name, size_t max_values,
                              cJSON **out, setok_error *err);

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when it is not one: bad lead or
 * continuation bytes, overlong forms, surrogates, beyond U+10FFFF. */
size_t setok_utf8_sequence(const unsigned char *s, size_t n);

#endif
