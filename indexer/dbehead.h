/* dbehead — the headers that client-side encryption stores in a DynamoDB
 * item, read without trusting a byte of them.
 *
 * AWS Database Encryption SDK: the attribute aws_dbe_head (B) holds the
 * structured encryption header (its specification, structured-encryption/
 * header.md; all numbers big-endian):
 *
 *   1   format version: 0x01, or 0x02 when some attribute is
 *       SIGN_AND_INCLUDE_IN_ENCRYPTION_CONTEXT
 *   1   format flavor: 0x00 or 0x01 (the algorithm suite: signatures or not)
 *   32  message id
 *   2+L encrypt legend: one byte per signed attribute, 'e' encrypted and
 *       signed, 's' signed only, 'c' (version 2 only) signed and in the
 *       encryption context; the attributes are taken in the order of
 *       their canonical paths (encitem.h)
 *   2+  encryption context: a count, then count pairs of 2-byte lengths and
 *       bytes (key, value)
 *   1+  encrypted data keys: a count (at least 1), then count triples of
 *       2-byte lengths and bytes (provider id, provider info, key)
 *   32  header commitment, and nothing after it
 *
 * dbehead_parse needs the legend; it walks the rest only by its lengths, to
 * know that the bytes are a whole header, and never copies or returns the
 * encryption context or the data keys (they name keys and key providers).
 *
 * Legacy DynamoDB Encryption Client (Java and Python): the attribute
 * *amzn-ddb-map-desc* (B) holds the material description: a 4-byte version
 * 0, then pairs of (4-byte length, UTF-8 key, 4-byte length, UTF-8 value)
 * up to the end.  The client writes "amzn-ddb-map-sym-mode" into it
 * whenever it had an encryption key, that is whenever it may have encrypted
 * an attribute; it records nothing about which attributes it encrypted.
 *
 * Pure; every length is checked against what is left before it is used. */
#ifndef DDB2ES_DBEHEAD_H
#define DDB2ES_DBEHEAD_H

#include <stdbool.h>
#include <stddef.h>

#define DBEHEAD_MESSAGE_ID 32
#define DBEHEAD_COMMITMENT 32

/* Why a header was refused (negative returns). */
enum dbehead_error {
    DBEHEAD_ETRUNCATED = -1, /* a field runs past the end */
    DBEHEAD_EVERSION = -2,   /* an unknown format version */
    DBEHEAD_EFLAVOR = -3,    /* an unknown format flavor */
    DBEHEAD_ELEGEND = -4,    /* a legend byte other than e, s (or c in version 2) */
    DBEHEAD_ENOKEYS = -5,    /* no encrypted data key */
    DBEHEAD_ETRAILING = -6,  /* bytes after the header commitment */
};

struct dbehead {
    unsigned version, flavor;
    const unsigned char *legend; /* inside the bytes parsed */
    size_t legend_len;
    size_t encrypted;            /* 'e' bytes in the legend */
};

/* Reads an aws_dbe_head value (the decoded bytes).  0, or a negative
 * enum dbehead_error; out is set only on 0. */
int dbehead_parse(const unsigned char *p, size_t len, struct dbehead *out);

/* Reads a *amzn-ddb-map-desc* value (the decoded bytes): 0 with *encrypted
 * set when it holds "amzn-ddb-map-sym-mode", or DBEHEAD_EVERSION (not
 * version 0) or DBEHEAD_ETRUNCATED. */
int dbehead_legacy_parse(const unsigned char *p, size_t len, bool *encrypted);

/* A phrase for a refusal ("truncated", ...). */
const char *dbehead_strerror(int rc);

#endif
