#include "tests/support/yamljson.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64

static json_t *convert(yaml_document_t *doc, yaml_node_t *n, int depth, char *err,
                       size_t errlen)
{
    json_t *v = NULL;

    if (!n || depth > MAX_DEPTH) {
        snprintf(err, errlen, "nesting deeper than %d", MAX_DEPTH);
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        v = json_stringn((const char *)n->data.scalar.value, n->data.scalar.length);
        if (!v)
            snprintf(err, errlen, "line %zu: not UTF-8", n->start_mark.line + 1);
        return v;
    case YAML_SEQUENCE_NODE:
        v = json_array();
        for (yaml_node_item_t *i = n->data.sequence.items.start;
             v && i < n->data.sequence.items.top; i++) {
            json_t *e = convert(doc, yaml_document_get_node(doc, *i), depth + 1, err, errlen);

            if (!e || json_array_append_new(v, e) < 0)
                v = (json_decref(v), NULL);
        }
        return v;
    case YAML_MAPPING_NODE:
        v = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             v && p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            json_t *e;
            char key[256];

            if (!k || k->type != YAML_SCALAR_NODE || k->data.scalar.length >= sizeof(key)) {
                snprintf(err, errlen, "line %zu: a key that is not a short scalar",
                         n->start_mark.line + 1);
                return (json_decref(v), NULL);
            }
            memcpy(key, k->data.scalar.value, k->data.scalar.length);
            key[k->data.scalar.length] = '\0';
            if (json_object_get(v, key)) {
                snprintf(err, errlen, "line %zu: key \"%s\" twice", k->start_mark.line + 1, key);
                return (json_decref(v), NULL);
            }
            e = convert(doc, yaml_document_get_node(doc, p->value), depth + 1, err, errlen);
            if (!e || json_object_set_new(v, key, e) < 0)
                v = (json_decref(v), NULL);
        }
        return v;
    default:
        snprintf(err, errlen, "line %zu: an empty node", n->start_mark.line + 1);
        return NULL;
    }
}

json_t *yamljson_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    yaml_parser_t parser;
    yaml_document_t doc, more;
    json_t *v = NULL;

    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return NULL;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s: line %zu: %s", path, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "unreadable");
        goto out;
    }
    if (!yaml_document_get_root_node(&doc))
        snprintf(err, errlen, "%s: empty", path);
    else
        v = convert(&doc, yaml_document_get_root_node(&doc), 0, err, errlen);
    yaml_document_delete(&doc);
    if (v) {
        bool extra = true; /* a second document, or what does not parse after the first */

        if (yaml_parser_load(&parser, &more)) {
            extra = yaml_document_get_root_node(&more) != NULL;
            yaml_document_delete(&more);
        }
        if (extra) {
            snprintf(err, errlen, "%s: more than one document, or junk after the first", path);
            json_decref(v);
            v = NULL;
        }
    }
out:
    yaml_parser_delete(&parser);
    fclose(f);
    return v;
}
