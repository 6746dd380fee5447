/* url — the host of an http(s) URL, and where secrets may travel. */
#ifndef DDB2ES_URL_H
#define DDB2ES_URL_H

#include <stdbool.h>
#include <stddef.h>

/* The host of an http(s) URL, without brackets, port or userinfo, into
 * host[len]; *https tells the scheme.  0, or -EINVAL for no http(s) URL. */
int url_host(const char *url, char *host, size_t len, bool *https);

/* 127.0.0.0/8, ::1 and "localhost": where plain http may carry secrets. */
bool url_host_is_loopback(const char *host);
/* A URL that credentials may travel to: https, or http to a loopback host. */
bool url_safe_for_secrets(const char *url);

/* prefix, then name percent-encoded as a URL path segment (every byte but
 * the unreserved A-Z a-z 0-9 - _ . ~ as %XX): "/_alias/" + "a b" gives
 * "/_alias/a%20b".  A new string, or NULL when out of memory. */
char *url_path(const char *prefix, const char *name);

#endif
