/* json.c — strict JSON over cJSON (json.h): a scan for what cJSON lets pass, the parse with
 * its error offset, and a walk for keys given twice. */
#include "json.h"

#include <stdio.h>
#include <string.h>

#include "io-private.h"

size_t setok_utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

bool setok_json_find_issue(const char *text, size_t n, size_t *offset, char *what,
                           size_t what_size, size_t *values)
{
    const unsigned char *s = (const unsigned char *)text;
    bool in_string = false;
    size_t count = 1; /* every value but the first follows a ',' or opens an array/object */
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        *offset = i;
        if (in_string) {
            if (c >= 0x80) {
                size_t len = setok_utf8_sequence(s + i, n - i);
                if (len == 0) {
                    snprintf(what, what_size, "byte 0x%02X inside a string is not UTF-8", c);
                    return true;
                }
                i += len;
                continue;
            }
            if (c < 0x20) {
                snprintf(what, what_size, "raw control character 0x%02X inside a string "
                         "(JSON strings escape them)", c);
                return true;
            }
            if (c == '"') {
                in_string = false;
            } else if (c == '\\' && i + 1 < n) {
                if (s[i + 1] == 'u' && n - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0) {
                    snprintf(what, what_size, "a \\u0000 (NUL) escape inside a string, which "
                             "this reader cannot hold");
                    return true;
                }
                i++; /* the escaped character cannot end the string */
            }
            i++;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            snprintf(what, what_size, "control character 0x%02X between values (JSON allows "
                     "only spaces, tabs and line breaks there)", c);
            return true;
        }
        if (c == '"')
            in_string = true;
        else if (c == ',' || c == '[' || c == '{')
            count++;
        i++;
    }
    *values = count;
    return false;
}

/* 1-based line and column of byte at in text. */
static void line_column(const char *text, size_t at, size_t *line, size_t *column)
{
    *line = 1;
    size_t start = 0;
    for (size_t i = 0; i < at; i++)
        if (text[i] == '\n')
            (*line)++, start = i + 1;
    *column = at - start + 1;
}

static setok_status fail_at(const char *text, size_t at, const char *name, const char *what,
                            setok_error *err)
{
    size_t line, column;
    line_column(text, at, &line, &column);
    return setok_fail(err, SETOK_ERR_INPUT, "%s: invalid JSON at byte %zu (line %zu, column %zu)"
                      ": %s", name, at, line, column, what);
}

/* The first key given twice in an object anywhere in the tree, or NULL. */
static const cJSON *repeated_key(const cJSON *node, bool *oom)
{
    for (; node; node = node->next) {
        if (cJSON_IsObject(node) && node->child && node->child->next) {
            size_t members = (size_t)cJSON_GetArraySize(node);
            setok_io_names seen;
            if (!setok_io_names_init(&seen, members)) {
                *oom = true;
                return NULL;
            }
            const cJSON *twice = NULL;
            for (const cJSON *m = node->child; m && !twice; m = m->next)
                if (m->string && !setok_io_names_add(&seen, m->string, 0, NULL))
                    twice = m;
            setok_io_names_free(&seen);
            if (twice)
                return twice;
        }
        if (node->child) {
            const cJSON *found = repeated_key(node->child, oom);
            if (found || *oom)
                return found;
        }
    }
    return NULL;
}

setok_status setok_json_parse(const char *text, size_t n, const char *name, size_t max_values,
                              cJSON **out, setok_error *err)
{
    *out = NULL;
    size_t at = 0, values = 0;
    char what[160];
    if (n == 0)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: invalid JSON: empty", name);
    if (setok_json_find_issue(text, n, &at, what, sizeof what, &values))
        return fail_at(text, at, name, what, err);
    if (values > max_values)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: holds up to %zu JSON values, more than the "
                          "%zu this reader accepts", name, values, max_values);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        return fail_at(text, at, name, at >= n ? "the text ends inside a value"
                                               : "not a JSON value here", err);
    }
    for (at = (size_t)(end - text); at < n; at++) {
        if (!strchr(" \t\r\n", text[at]) || text[at] == '\0') {
            cJSON_Delete(root);
            return fail_at(text, at, name, "data after the top-level value", err);
        }
    }
    bool oom = false;
    const cJSON *twice = repeated_key(root, &oom);
    if (twice || oom) {
        char kb[200];
        setok_status st = oom ? setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", name)
                              : setok_fail(err, SETOK_ERR_INPUT, "%s: invalid JSON: key '%s' "
                                           "appears twice in one object", name,
                                           setok_io_printable(kb, sizeof kb, twice->string));
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return SETOK_OK;
}
