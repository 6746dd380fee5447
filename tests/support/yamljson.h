/* yamljson — a YAML file as a jansson value, for tests that check the YAML
 * files the project ships (deploy/prometheus-rules.yaml).  Read with libyaml
 * (Debian libyaml-dev, YAML 1.1): mappings become objects, sequences arrays
 * and every scalar a string, as written (no type guessing: "5m", "true" and
 * "1" stay strings).  Refused: a file that does not parse, more than one
 * document, a key that is not a scalar, a key twice in one mapping, nesting
 * deeper than 64. */
#ifndef DDB2ES_TEST_YAMLJSON_H
#define DDB2ES_TEST_YAMLJSON_H

#include <jansson.h>
#include <stddef.h>

/* The value (caller decrefs), or NULL with err saying why (with the line). */
json_t *yamljson_load(const char *path, char *err, size_t errlen);

#endif
