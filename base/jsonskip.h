/* jsonskip — finds the extent of JSON text without parsing it: where a
 * value, a string or a run of whitespace ends.  Only strings (with their
 * escapes) and nesting are followed; the text is not checked otherwise
 * (a parser reads what these delimit). */
#ifndef DDB2ES_JSONSKIP_H
#define DDB2ES_JSONSKIP_H

/* Past the JSON whitespace at p (end when it runs to the end). */
const char *jsonskip_ws(const char *p, const char *end);

/* p at a string's opening quote: past its closing quote, or NULL. */
const char *jsonskip_string(const char *p, const char *end);

/* Past the blanks at p, the byte c: the byte after it, or NULL when the
 * next byte is another. */
const char *jsonskip_take(const char *p, const char *end, char c);

/* p at a value's first character: its end (an object or array past its
 * closing bracket; a scalar at the ',', '}', ']' or whitespace after it, or
 * at end), or NULL when the text ends inside it. */
const char *jsonskip_value(const char *p, const char *end);

#endif
