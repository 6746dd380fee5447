/* encitem — which attributes of an item written by client-side encryption
 * may reach a document.  Nothing is decrypted; ciphertext, and whatever
 * may be ciphertext, is left out.
 *
 * AWS Database Encryption SDK (an item holding aws_dbe_head).  Its own
 * attributes are left out: aws_dbe_head, aws_dbe_foot and every other name
 * beginning with aws_dbe_ (the version tag aws_dbe_v_1...), except the
 * searchable-encryption beacons aws_dbe_b_<name>, which stay (strings
 * holding a truncated HMAC, made for exact-match search).  The header's
 * encrypt legend (dbehead.h) has one byte per signed attribute; the signed
 * attributes are taken in the order of their canonical paths, which for a
 * top-level attribute sorts by the name's length in UTF-16 code units, then
 * by its UTF-8 bytes (specification structured-encryption/header.md,
 * "Canonical Path"; the SDK counts in UTF-16).  Names beginning with
 * aws_dbe_ or aws:rep: are never signed.  Unsigned (DO_NOTHING) attributes
 * are not in the legend, and the item does not say which they are, so the
 * legend is matched to the item's attributes in every way that keeps the
 * order and obeys what the SDK guarantees: the table's key attributes are
 * signed and never encrypted, and an encrypted attribute is a B value of at
 * least 18 bytes (a 2-byte type id the SDK writes, then AES-GCM ciphertext
 * and its 16-byte tag).  An attribute that some match pairs with an 'e' is
 * left out; when the legend covers every attribute there is one match and
 * exactly the encrypted attributes go.
 *
 * Legacy DynamoDB Encryption Client (an item holding *amzn-ddb-map-desc* or
 * *amzn-ddb-map-sig*, and no aws_dbe_head): both are left out; when the
 * material description says the item may hold ciphertext (dbehead.h), every
 * B attribute other than a key attribute is left out, since ciphertext is
 * always B and nothing records which B attributes are ciphertext.
 *
 * A header that cannot be used (not B, not base64, refused by dbehead, or a
 * legend no match fits) fails: the encryption's own attributes and every B
 * and BS attribute other than a key attribute are left out; the rest stays.
 *
 * Pure (jansson only).  The item is borrowed and must not change while the
 * result is used: flags follow the order json_object_keylen_foreach gives. */
#ifndef DDB2ES_ENCITEM_H
#define DDB2ES_ENCITEM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Beyond this many cells ((attributes + 1) x (unsigned attributes + 1)),
 * the legend is not matched: every B attribute other than a key attribute
 * is taken for ciphertext when the legend has an 'e'. */
#define ENCITEM_MATCH_MAX ((size_t)1 << 20)

enum encitem_kind { ENCITEM_NONE, ENCITEM_DBESDK, ENCITEM_LEGACY };

/* The table's key attribute names, with their lengths (they may hold NUL). */
struct encitem_keys {
    const char *hash;
    size_t hash_len;
    const char *range; /* NULL for a hash-only table */
    size_t range_len;
};

struct encitem {
    enum encitem_kind kind;
    bool failed;           /* the header could not be used (why says why) */
    char why[96];          /* when failed: one phrase, no value of the item */
    size_t left_out;       /* the item's own attributes left out (ciphertext or maybe) */
    size_t sdk_left_out;   /* the encryption's own attributes left out */
    size_t n;              /* members of the item */
    unsigned char *out;    /* n flags in iteration order, 1 = left out; NULL: none is */
};

/* Classifies item's members.  0 (e->kind ENCITEM_NONE when the item is not
 * one client-side encryption wrote), or -ENOMEM; release with
 * encitem_close either way. */
int encitem_classify(json_t *item, const struct encitem_keys *keys, struct encitem *e);

/* Whether the member at position pos of the iteration is left out. */
static inline bool encitem_left_out(const struct encitem *e, size_t pos)
{
    return e->out && pos < e->n && e->out[pos];
}

void encitem_close(struct encitem *e);

#endif
