#include "indexer/dbehead.h"

#include <stdint.h>
#include <string.h>

/* A read position that never passes the end. */
struct cur {
    const unsigned char *p;
    size_t left;
};

static bool take(struct cur *c, size_t n, const unsigned char **at)
{
    if (n > c->left)
        return false;
    if (at)
        *at = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

static bool be16(struct cur *c, size_t *v)
{
    const unsigned char *b;

    if (!take(c, 2, &b))
        return false;
    *v = (size_t)b[0] << 8 | b[1];
    return true;
}

static bool be32(struct cur *c, uint32_t *v)
{
    const unsigned char *b;

    if (!take(c, 4, &b))
        return false;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return true;
}

/* Skips n fields, each a 2-byte length and that many bytes. */
static bool skip16(struct cur *c, size_t n)
{
    size_t len;

    for (size_t i = 0; i < n; i++)
        if (!be16(c, &len) || !take(c, len, NULL))
            return false;
    return true;
}

int dbehead_parse(const unsigned char *p, size_t len, struct dbehead *out)
{
    struct cur c = { p, len };
    const unsigned char *legend, *b;
    size_t nlegend, npairs, nkeys, encrypted = 0;
    unsigned version, flavor;

    if (!take(&c, 2, &b))
        return DBEHEAD_ETRUNCATED;
    version = b[0];
    flavor = b[1];
    if (version != 1 && version != 2)
        return DBEHEAD_EVERSION;
    if (flavor > 1)
        return DBEHEAD_EFLAVOR;
    if (!take(&c, DBEHEAD_MESSAGE_ID, NULL) || !be16(&c, &nlegend) ||
        !take(&c, nlegend, &legend))
        return DBEHEAD_ETRUNCATED;
    for (size_t i = 0; i < nlegend; i++) {
        if (legend[i] == 'e')
            encrypted++;
        else if (legend[i] != 's' && !(legend[i] == 'c' && version == 2))
            return DBEHEAD_ELEGEND;
    }
    if (!be16(&c, &npairs) || !skip16(&c, 2 * npairs))
        return DBEHEAD_ETRUNCATED;
    if (!take(&c, 1, &b))
        return DBEHEAD_ETRUNCATED;
    nkeys = b[0];
    if (nkeys == 0)
        return DBEHEAD_ENOKEYS;
    if (!skip16(&c, 3 * nkeys) || !take(&c, DBEHEAD_COMMITMENT, NULL))
        return DBEHEAD_ETRUNCATED;
    if (c.left)
        return DBEHEAD_ETRAILING;
    *out = (struct dbehead){ .version = version, .flavor = flavor, .legend = legend,
                             .legend_len = nlegend, .encrypted = encrypted };
    return 0;
}

int dbehead_legacy_parse(const unsigned char *p, size_t len, bool *encrypted)
{
    static const char sym_mode[] = "amzn-ddb-map-sym-mode";
    struct cur c = { p, len };
    const unsigned char *key;
    uint32_t version, klen, vlen;
    bool found = false;

    if (!be32(&c, &version))
        return DBEHEAD_ETRUNCATED;
    if (version != 0)
        return DBEHEAD_EVERSION;
    while (c.left) {
        if (!be32(&c, &klen) || !take(&c, klen, &key) || !be32(&c, &vlen) ||
            !take(&c, vlen, NULL))
            return DBEHEAD_ETRUNCATED;
        if (klen == sizeof(sym_mode) - 1 && memcmp(key, sym_mode, klen) == 0)
            found = true;
    }
    *encrypted = found;
    return 0;
}

const char *dbehead_strerror(int rc)
{
    switch (rc) {
    case 0:                  return "no error";
    case DBEHEAD_ETRUNCATED: return "truncated";
    case DBEHEAD_EVERSION:   return "unknown format version";
    case DBEHEAD_EFLAVOR:    return "unknown format flavor";
    case DBEHEAD_ELEGEND:    return "encrypt legend byte other than e, s or c";
    case DBEHEAD_ENOKEYS:    return "no encrypted data key";
    case DBEHEAD_ETRAILING:  return "bytes after the header commitment";
    }
    return "unknown error";
}
