/* fakehttp — a scripted HTTP/1.1 server for tests, on 127.0.0.1:<free port>,
 * running on its own thread.  Replies come from a FIFO script (or a handler);
 * every request is recorded for assertions.  Keep-alive is honoured. */
#ifndef DDB2ES_FAKEHTTP_H
#define DDB2ES_FAKEHTTP_H

#include <stddef.h>

enum fake_action {
    FAKE_NORMAL,    /* send the reply */
    FAKE_DROP,      /* close the connection without replying */
    FAKE_RESET_MID, /* send the headers and half the body, then reset */
    FAKE_HANG,      /* never reply (until the client gives up or the server stops) */
};

struct fake_reply {
    int status;
    const char *headers;  /* extra "Name: value\r\n" lines, or NULL */
    const char *body;     /* NULL = "" */
    size_t body_len;      /* 0 = strlen(body) */
    long delay_ms;        /* wait before replying */
    enum fake_action action;
};

struct fake_req {
    char method[16];
    char *path;           /* with the query string */
    char *headers;        /* raw header block */
    char *body;           /* NUL-terminated (de-chunked) */
    size_t body_len;
};

struct fakehttp;
typedef void fake_handler(const struct fake_req *req, struct fake_reply *out, void *arg);

struct fakehttp *fake_start(void);   /* aborts the test on failure */
void fake_stop(struct fakehttp *f);  /* closes connections, joins, frees */
int fake_port(const struct fakehttp *f);
const char *fake_url(const struct fakehttp *f);  /* "http://127.0.0.1:PORT" */
/* Queue replies, used in order; when the queue is empty the handler (if any)
 * answers, else 500 "no scripted reply". Strings are copied. */
void fake_reply(struct fakehttp *f, int status, const char *body);
void fake_reply_ex(struct fakehttp *f, const struct fake_reply *r);
void fake_reply_file(struct fakehttp *f, int status, const char *path);
void fake_set_handler(struct fakehttp *f, fake_handler *h, void *arg);
/* From now on requests are answered but not kept (a long-running server,
 * e.g. a benchmark's stand-in): fake_nreq and fake_req see none of them. */
void fake_forget_requests(struct fakehttp *f);
size_t fake_nreq(struct fakehttp *f);
/* The i-th request (copy owned by f, valid until fake_stop). NULL if none. */
const struct fake_req *fake_req(struct fakehttp *f, size_t i);
/* Value of a request header (case-insensitive), copied into a static-per-call
 * buffer owned by f; NULL when absent. */
const char *fake_req_header(struct fakehttp *f, const struct fake_req *r, const char *name);
/* Blocks until at least n requests arrived or ms passed; returns the count. */
size_t fake_wait_nreq(struct fakehttp *f, size_t n, long ms);
/* Number of TCP connections accepted so far (to check keep-alive reuse). */
size_t fake_nconn(struct fakehttp *f);

#endif
