/* source_keys — an item's key attributes, and the key of the item a
 * dead-letter entry is about; see source.h. */
#include "indexer/source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonx.h"

json_t *source_key_of(const struct source_keys *ks, json_t *item)
{
    json_t *k = json_object();

    json_object_setn_nocheck(k, ks->hash_key, ks->hash_key_len,
                             json_object_getn(item, ks->hash_key, ks->hash_key_len));
    if (ks->range_key)
        json_object_setn_nocheck(k, ks->range_key, ks->range_key_len,
                                 json_object_getn(item, ks->range_key, ks->range_key_len));
    return k;
}

/* A key attribute value ({"S":..}, {"N":..} or {"B":..}) of the table's type. */
static bool key_value_ok(json_t *v, char type)
{
    const char *t = json_object_iter_key(json_object_iter(v));

    return json_object_size(v) == 1 && t && (!type || (t[0] == type && !t[1])) &&
           strchr("SNB", t[0]) && !t[1] && json_is_string(json_object_iter_value(json_object_iter(v)));
}

/* The entry's "keys" (or a raw input's) checked against the key schema. */
static json_t *key_checked(const struct source_keys *ks, json_t *keys)
{
    json_t *k;

    if (!json_is_object(keys) || json_object_size(keys) != (ks->range_key ? 2u : 1u) ||
        !key_value_ok(json_object_get(keys, ks->hash_key), ks->hash_type) ||
        (ks->range_key && !key_value_ok(json_object_get(keys, ks->range_key), ks->range_type)))
        return NULL;
    k = json_object();
    json_object_set(k, ks->hash_key, json_object_get(keys, ks->hash_key));
    if (ks->range_key)
        json_object_set(k, ks->range_key, json_object_get(keys, ks->range_key));
    return k;
}

bool source_key_hmac_named(const struct source_keys *ks, const char *name)
{
    for (size_t i = 0; name && i < ks->tf->n_hmac; i++)
        if (strcmp(ks->tf->hmac[i], name) == 0)
            return true;
    return false;
}

/* Entries written before they carried "keys": the key read back from the
 * _id (transform.h: key values joined by id_sep, id_sep and '\' escaped
 * with '\'), with the attribute types DescribeTable gave.  NULL when it
 * cannot be (a hmac'd key attribute, types unknown, not such an _id), or
 * when the key found does not make the same _id again. */
static json_t *key_from_id(struct source_keys *ks, const char *id, size_t len, bool *digest_like)
{
    struct buf part[2];
    json_t *key = NULL;
    size_t n = 0;
    bool ok = true;

    *digest_like = false;
    if (!ks->hash_type || (ks->range_key && !ks->range_type) ||
        source_key_hmac_named(ks, ks->hash_key) || source_key_hmac_named(ks, ks->range_key))
        return NULL;
    buf_init(&part[0], DOC_ID_MAX + 1);
    buf_init(&part[1], DOC_ID_MAX + 1);
    for (size_t i = 0; ok && i < len; i++) {
        if (id[i] == '\\' && i + 1 < len)
            ok = buf_putc(&part[n], id[++i]) == 0;
        else if (id[i] == ks->tf->id_sep && ks->range_key && n == 0)
            n = 1;
        else
            ok = buf_putc(&part[n], id[i]) == 0;
    }
    if (ok && n == (ks->range_key ? 1u : 0u)) {
        char t[2][2] = { { ks->hash_type, 0 }, { ks->range_type, 0 } };

        key = json_object();
        json_object_set_new(key, ks->hash_key,
                            json_pack("{s:s%}", t[0], part[0].ptr ? part[0].ptr : "", part[0].len));
        if (ks->range_key)
            json_object_set_new(key, ks->range_key,
                                json_pack("{s:s%}", t[1], part[1].ptr ? part[1].ptr : "",
                                          part[1].len));
    }
    buf_close(&part[0]);
    buf_close(&part[1]);
    /* The key must give this very _id (a changed id_separator, a
     * malformed number or base64 fail here). */
    buf_reset(&ks->scratch.source);
    if (key && (transform_keys(ks->tf, key, &ks->scratch, NULL) != TR_DOC ||
                ks->scratch.id_len != len || memcmp(ks->scratch.id, id, len) != 0)) {
        json_decref(key);
        key = NULL;
    }
    if (key && len == 64) {
        *digest_like = true;
        for (size_t i = 0; i < len; i++)
            if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                *digest_like = false;
    }
    return key;
}

/* The item a dead-letter entry is about: its "keys"; else, for input that
 * never became a document, the raw input's (a record's dynamodb.Keys, an
 * item's key attributes); else the key read back from its _id. */
json_t *source_dlq_key(struct source_keys *ks, json_t *meta, const char *doc, size_t doc_len,
                       bool *digest_like)
{
    json_t *keys = json_object_get(meta, "keys"), *id = json_object_get(meta, "id"), *k = NULL;

    *digest_like = false;
    if (!json_is_null(keys) && keys)
        return key_checked(ks, keys);
    if (doc && json_is_null(json_object_get(meta, "status"))) {
        json_t *raw = jsonx_loadb(doc, doc_len, 0, NULL), *tmp;

        if (source_is_record(raw)) {
            k = key_checked(ks, json_object_get(json_object_get(raw, "dynamodb"), "Keys"));
        } else if (json_is_object(raw)) {
            tmp = source_key_of(ks, raw);
            k = key_checked(ks, tmp);
            json_decref(tmp);
        }
        json_decref(raw);
        if (k)
            return k;
    }
    if (json_string_length(id) == 0)
        return NULL;
    return key_from_id(ks, json_string_value(id), json_string_length(id), digest_like);
}

/* A key attribute's name, which may hold NUL: a terminated copy and its length. */
static char *key_name(json_t *name, size_t *len)
{
    char *s = malloc(json_string_length(name) + 1);

    if (s) {
        *len = json_string_length(name);
        memcpy(s, json_string_value(name), *len + 1);
    }
    return s;
}

int source_keys_describe(struct source_keys *ks, const json_t *reply)
{
    json_t *table = json_object_get(reply, "Table"), *k;
    size_t i;

    json_array_foreach(json_object_get(table, "KeySchema"), i, k) {
        json_t *name = json_object_get(k, "AttributeName");
        const char *type = json_string_value(json_object_get(k, "KeyType"));

        if (!json_is_string(name) || !type)
            continue;
        if (strcmp(type, "HASH") == 0 && !ks->hash_key &&
            !(ks->hash_key = key_name(name, &ks->hash_key_len)))
            return -ENOMEM;
        if (strcmp(type, "RANGE") == 0 && !ks->range_key &&
            !(ks->range_key = key_name(name, &ks->range_key_len)))
            return -ENOMEM;
    }
    json_array_foreach(json_object_get(table, "AttributeDefinitions"), i, k) {
        const char *name = json_string_value(json_object_get(k, "AttributeName"));
        const char *type = json_string_value(json_object_get(k, "AttributeType"));

        if (!name || !type || !type[0] || type[1] || !strchr("SNB", type[0]))
            continue;
        if (ks->hash_key && strcmp(name, ks->hash_key) == 0)
            ks->hash_type = type[0];
        else if (ks->range_key && strcmp(name, ks->range_key) == 0)
            ks->range_type = type[0];
    }
    return ks->hash_key ? 0 : -ENOENT;
}
