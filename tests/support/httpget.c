/* Blocking HTTP/1.1 requests to the daemon's endpoints: one connection per
 * request, which the daemon closes after its answer. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/buf.h"
#include "tests/support/httpget.h"
#include "tests/support/promparse.h"

int httpget_free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

char *httpget(int port, const char *method, const char *path, long *status)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { .tv_sec = 5 };
    char req[256], chunk[8192];
    struct buf b;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char *body, *all;

    *status = 0;
    if (fd < 0)
        return strdup("");
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return strdup("");
    }
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path);
    send(fd, req, strlen(req), MSG_NOSIGNAL);
    buf_init(&b, BUF_NOMAX);
    while ((n = recv(fd, chunk, sizeof(chunk), 0)) > 0)
        buf_append(&b, chunk, (size_t)n);
    close(fd);
    all = buf_take(&b);
    if (!all)
        return strdup("");
    if (strncmp(all, "HTTP/1.1 ", 9) == 0)
        *status = strtol(all + 9, NULL, 10);
    body = strstr(all, "\r\n\r\n");
    body = strdup(body ? body + 4 : "");
    free(all);
    return body;
}

double httpget_metric(int port, const char *name, const char *labels)
{
    struct prom p;
    const struct prom_sample *s;
    char err[256];
    long st;
    char *body = httpget(port, "GET", "/metrics", &st);
    double v = -1;

    if (st == 200 && prom_parse(body, &p, err, sizeof(err)) == 0) {
        s = prom_find(&p, name, labels);
        if (s)
            v = s->value;
    }
    if (st == 200)
        prom_free(&p);
    free(body);
    return v;
}
