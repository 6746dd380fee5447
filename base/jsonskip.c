#include "base/jsonskip.h"

#include <string.h>

#include "base/swar.h"

const char *jsonskip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

const char *jsonskip_take(const char *p, const char *end, char c)
{
    p = jsonskip_ws(p, end);
    return p < end && *p == c ? p + 1 : NULL;
}

const char *jsonskip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        p = swar_skip(p, end, swar_quote_or_backslash);
        if (p >= end)
            break;
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* The end of the JSON value starting at p, or NULL: only its extent is found
 * (strings and nesting); a parser checks the rest. */
const char *jsonskip_value(const char *p, const char *end)
{
    int depth = 0;

    while (p < end) {
        char c = *p;

        if (c == '"') {
            if (!(p = jsonskip_string(p, end)))
                return NULL;
            if (depth == 0)
                return p;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return p; /* the end of the object holding a scalar */
            if (--depth == 0)
                return p + 1;
        } else if (depth == 0 && strchr(", \t\r\n", c)) {
            return p;
        }
        p++;
    }
    return depth == 0 ? p : NULL;
}
