#include "base/url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"

int url_host(const char *url, char *host, size_t len, bool *https)
{
    const char *h, *end, *at;
    size_t n;

    if (strncasecmp(url, "https://", 8) == 0)
        h = url + 8, *https = true;
    else if (strncasecmp(url, "http://", 7) == 0)
        h = url + 7, *https = false;
    else
        return -EINVAL;
    end = h + strcspn(h, "/?#");
    at = memchr(h, '@', (size_t)(end - h));
    if (at)
        h = at + 1;
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));

        if (!close)
            return -EINVAL;
        h++;
        n = (size_t)(close - h);
    } else {
        const char *colon = memchr(h, ':', (size_t)(end - h));

        n = (size_t)((colon ? colon : end) - h);
    }
    if (n == 0 || n >= len)
        return -EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

bool url_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

bool url_safe_for_secrets(const char *url)
{
    char host[256];
    bool https;

    if (url_host(url, host, sizeof host, &https) < 0)
        return false;
    return https || url_host_is_loopback(host);
}

char *url_path(const char *prefix, const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, prefix);
    for (const unsigned char *q = (const unsigned char *)name; *q; q++) {
        if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
            *q == '-' || *q == '_' || *q == '.' || *q == '~') {
            buf_putc(&b, (char)*q);
        } else {
            buf_putc(&b, '%');
            buf_putc(&b, hex[*q >> 4]);
            buf_putc(&b, hex[*q & 15]);
        }
    }
    return buf_take(&b);
}
