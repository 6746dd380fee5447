/* testcert — self-signed certificates made in the test, not kept as files. */
#ifndef DDB2ES_TEST_TESTCERT_H
#define DDB2ES_TEST_TESTCERT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

/* A self-signed CA certificate valid for an hour, for subject alternative name
 * san ("IP:127.0.0.1", "DNS:localhost", or NULL for none), with a new key of
 * type key_type ("EC": P-256, "RSA": 2048 bits) given in *key. */
X509 *testcert_new(const char *key_type, const char *san, EVP_PKEY **key);
/* x as PEM into path (created or truncated). */
void testcert_write(const char *path, X509 *x);

#endif
