/* TLS through base/http: the server's certificate is checked by default, by
 * name as well as by issuer; [sink] ca_file adds a trusted issuer and
 * tls_verify = false is the only way around the check; and the libcurl linked
 * in looks for Debian's CA bundle, which is what checks AWS's certificates.
 * The server is a small OpenSSL one in a thread of this process, with a
 * certificate made here for 127.0.0.1 (no openssl command needed). */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "base/http.h"
#include "tests/support/loop.h"
#include "tests/support/testcert.h"

struct tlsd {
    SSL_CTX *ctx;
    int fd, port;
    pthread_t thread;
    atomic_int served;    /* requests answered over TLS */
    atomic_int refused;   /* connections the client left without a request */
    atomic_bool stop;
};

static void *serve(void *arg)
{
    struct tlsd *d = arg;

    while (!d->stop) {
        int c = accept(d->fd, NULL, NULL);
        SSL *ssl;
        char req[4096];
        size_t n = 0;
        static const char reply[] =
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntls";

        if (c < 0)
            break; /* shut down */
        ssl = SSL_new(d->ctx);
        SSL_set_fd(ssl, c);
        if (SSL_accept(ssl) != 1) {
            d->refused++;
        } else {
            while (n < sizeof(req) - 1) {
                int r = SSL_read(ssl, req + n, (int)(sizeof(req) - 1 - n));

                if (r <= 0)
                    break;
                n += (size_t)r;
                req[n] = '\0';
                if (strstr(req, "\r\n\r\n"))
                    break;
            }
            if (!n)
                d->refused++; /* the handshake ended, then the client hung up
                               * (curl checks the name after it) */
            else if (SSL_write(ssl, reply, sizeof(reply) - 1) > 0)
                d->served++;
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(c);
    }
    return NULL;
}

static struct tlsd *tlsd_start(X509 *cert, EVP_PKEY *key)
{
    struct tlsd *d = calloc(1, sizeof(*d));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);

    cr_assert_not_null(d);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up is not the test's end */
    d->ctx = SSL_CTX_new(TLS_server_method());
    cr_assert_not_null(d->ctx);
    cr_assert_eq(SSL_CTX_use_certificate(d->ctx, cert), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey(d->ctx, key), 1);
    d->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(d->fd >= 0);
    cr_assert_eq(bind(d->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(d->fd, 8), 0);
    cr_assert_eq(getsockname(d->fd, (struct sockaddr *)&sa, &len), 0);
    d->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&d->thread, NULL, serve, d), 0);
    return d;
}

static void tlsd_stop(struct tlsd *d)
{
    d->stop = true;
    shutdown(d->fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(d->thread, NULL);
    close(d->fd);
    SSL_CTX_free(d->ctx);
    free(d);
}

/* The server thread counts a connection once it is done with it, which can
 * be after the client's callback ran: wait up to 5 s for *v to reach want,
 * then give its value. */
static int settled(atomic_int *v, int want)
{
    for (int i = 0; i < 5000 && *v < want; i++)
        usleep(1000);
    return *v;
}

struct result {
    int calls, err;
    long status;
    char body[64];
    char error[256];
};

static void on_done(struct http_req *req, int err, void *arg)
{
    struct result *res = arg;
    const struct buf *b = http_req_body(req);

    res->calls++;
    res->err = err;
    res->status = http_req_status(req);
    snprintf(res->body, sizeof(res->body), "%.*s", (int)b->len, b->ptr);
    snprintf(res->error, sizeof(res->error), "%s", http_req_error(req));
}

static bool called(void *arg)
{
    return ((struct result *)arg)->calls > 0;
}

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

/* One GET of url with a client made from opts (NULL: the defaults). */
static struct result get(const char *url, const struct http_opts *opts)
{
    uv_loop_t loop;
    struct http *h;
    struct result res = { 0 };
    int closed = 0;

    cr_assert_eq(uv_loop_init(&loop), 0);
    h = http_new(&loop, opts);
    cr_assert_not_null(h);
    cr_assert_eq(http_send(h, http_req_new("GET", url), on_done, &res), 0);
    cr_assert(loop_run_until(&loop, called, &res, 10000), "no callback");
    http_close(h, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(closed, 1);
    cr_assert_eq(uv_loop_close(&loop), 0);
    return res;
}

TestSuite(tls, .timeout = 30);

/* One key type (AWS's endpoints serve RSA and ECDSA certificates). */
static void checked_and_ca_file(const char *key_type)
{
    char dir[] = "/tmp/ddb2es-tls.XXXXXX", ca[64], other_ca[80], url[64];
    EVP_PKEY *key, *other_key;
    X509 *cert = testcert_new(key_type, "IP:127.0.0.1", &key);
    X509 *other = testcert_new(key_type, "IP:127.0.0.1", &other_key);
    struct tlsd *d = tlsd_start(cert, key);
    struct result r;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(other_ca, sizeof(other_ca), "%s/other.pem", dir);
    testcert_write(ca, cert);
    testcert_write(other_ca, other);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", d->port);

    /* The defaults: an issuer the system does not trust is refused. */
    r = get(url, NULL);
    cr_assert_eq(r.err, -EPROTO, "%s: got %d (%s)", key_type, r.err, r.error);
    cr_assert(strstr(r.error, "certificate"), "the error names the certificate: %s", r.error);
    /* Another certificate in ca_file does not vouch for this one. */
    r = get(url, &(struct http_opts){ .tls_verify = true, .ca_file = other_ca });
    cr_assert_eq(r.err, -EPROTO, "%s: got %d (%s)", key_type, r.err, r.error);
    cr_assert_eq(settled(&d->refused, 2), 2, "both handshakes failed");
    cr_assert_eq(d->served, 0, "no request reached a server the client refused");

    /* Its own issuer in ca_file: the request goes through TLS. */
    r = get(url, &(struct http_opts){ .tls_verify = true, .ca_file = ca });
    cr_assert_eq(r.err, 0, "%s: %s", key_type, r.error);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "tls");
    /* tls_verify = false, the explicit way around the check. */
    r = get(url, &(struct http_opts){ .tls_verify = false });
    cr_assert_eq(r.err, 0, "%s: %s", key_type, r.error);
    cr_assert_str_eq(r.body, "tls");
    cr_assert_eq(settled(&d->served, 2), 2);

    tlsd_stop(d);
    unlink(ca);
    unlink(other_ca);
    rmdir(dir);
    X509_free(cert);
    X509_free(other);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other_key);
}

Test(tls, the_server_is_checked_and_ca_file_adds_an_issuer)
{
    checked_and_ca_file("EC");
    checked_and_ca_file("RSA");
}

/* The name is checked as well as the issuer: one certificate, for
 * DNS:localhost, is taken for https://localhost and refused for the same
 * server as https://127.0.0.1. */
Test(tls, a_name_the_certificate_does_not_hold_is_refused)
{
    char dir[] = "/tmp/ddb2es-tls.XXXXXX", ca[64], url[64];
    EVP_PKEY *key;
    X509 *cert = testcert_new("EC", "DNS:localhost", &key);
    struct tlsd *d = tlsd_start(cert, key);
    struct http_opts trust = { .tls_verify = true, .ca_file = ca };
    struct result r;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    testcert_write(ca, cert);
    snprintf(url, sizeof(url), "https://localhost:%d/", d->port);
    r = get(url, &trust);
    cr_assert_eq(r.err, 0, "the name it holds: %s", r.error);
    cr_assert_eq(settled(&d->served, 1), 1);

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", d->port);
    r = get(url, &trust);
    cr_assert_eq(r.err, -EPROTO, "got %d (%s)", r.err, r.error);
    cr_assert(strstr(r.error, "127.0.0.1") || strstr(r.error, "name"),
              "the error says the name does not match: %s", r.error);
    cr_assert_eq(settled(&d->refused, 1), 1);
    cr_assert_eq(d->served, 1);
    tlsd_stop(d);
    unlink(ca);
    rmdir(dir);
    X509_free(cert);
    EVP_PKEY_free(key);
}

/* With no ca_file, the certificates of AWS's endpoints are checked against
 * the system's bundle, as Debian's libcurl does: the libcurl ddb2es links
 * must look there (scripts/curl.sh configures its own build so). */
Test(tls, the_default_issuers_are_the_systems_ca_bundle)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    FILE *f;
    char line[128];
    int certs = 0;

    cr_assert_not_null(v->ssl_version, "libcurl has TLS");
    cr_assert(strncmp(v->ssl_version, "OpenSSL/", 8) == 0, "%s", v->ssl_version);
    cr_assert_not_null(v->cainfo);
    cr_assert_str_eq(v->cainfo, "/etc/ssl/certs/ca-certificates.crt");
    cr_assert_not_null(v->capath);
    cr_assert_str_eq(v->capath, "/etc/ssl/certs");
    f = fopen(v->cainfo, "r");
    cr_assert_not_null(f, "%s: %s (Debian's ca-certificates)", v->cainfo, strerror(errno));
    while (fgets(line, sizeof(line), f))
        certs += strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0;
    fclose(f);
    cr_assert_gt(certs, 50, "%d certificates in %s", certs, v->cainfo);
}

/* The libcurl of the default build (scripts/curl.sh) has HTTP and HTTPS and
 * nothing else; `ddb2es --version` says so (tests/test_cli.c). */
Test(tls, the_own_libcurl_speaks_http_and_https_only)
{
#ifdef DDB2ES_OWN_CURL
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    char all[256] = "";

    for (const char *const *p = v->protocols; *p; p++)
        snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", *all ? " " : "", *p);
    cr_assert_str_eq(all, "http https");
    cr_assert(v->features & CURL_VERSION_SSL);
    cr_assert(v->features & CURL_VERSION_IPV6);
    cr_assert(v->features & CURL_VERSION_ASYNCHDNS, "the threaded resolver: a lookup never blocks the loop");
    cr_assert_eq(v->features & (CURL_VERSION_HTTP2 | CURL_VERSION_NTLM | CURL_VERSION_GSSAPI), 0);
#else
    cr_skip_test("built with CURL=system: Debian's shared libcurl");
#endif
}
