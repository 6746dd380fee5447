/* testcert — see testcert.h. */
#include "tests/support/testcert.h"

#include <criterion/criterion.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

static void add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    cr_assert_not_null(ext, "extension %s", value);
    cr_assert(X509_add_ext(x, ext, -1));
    X509_EXTENSION_free(ext);
}

X509 *testcert_new(const char *key_type, const char *san, EVP_PKEY **key)
{
    X509 *x = X509_new();

    *key = strcmp(key_type, "RSA") == 0 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    cr_assert(x && *key, "a %s key", key_type);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"ddb2es test CA", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, *key);
    if (san)
        add_ext(x, NID_subject_alt_name, san);
    add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
    cr_assert(X509_sign(x, *key, EVP_sha256()) > 0);
    return x;
}

void testcert_write(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "%s", path);
    cr_assert(PEM_write_X509(f, x) == 1);
    cr_assert_eq(fclose(f), 0);
}
