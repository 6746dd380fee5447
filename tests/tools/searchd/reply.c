#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Small helpers: JSON text, error bodies                                   */

int put_json_str(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = buf_putc(b, '"');

    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = { '\\', (char)ch };
            rc = buf_append(b, e, 2);
        } else if (ch < 0x20) {
            char e[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
            rc = buf_append(b, e, 6);
        } else {
            rc = buf_putc(b, (char)ch);
        }
    }
    return rc ? rc : buf_putc(b, '"');
}

int dump_cb(const char *p, size_t n, void *arg)
{
    return buf_append(arg, p, n) ? -1 : 0;
}

json_t *err_obj(const char *type, const char *reason)
{
    return json_pack("{s:s, s:s}", "type", type, "reason", reason);
}

/* {"error":{"root_cause":[cause],...cause},"status":N}; takes cause. */
json_t *es_error_body(int status, json_t *cause)
{
    json_t *top = json_deep_copy(cause);
    json_t *root_cause = json_copy(cause);

    json_object_del(root_cause, "caused_by");
    json_object_set_new(top, "root_cause", json_pack("[o]", root_cause));
    /* root_cause goes first, as ES prints it */
    json_t *ordered = json_object();
    json_object_set(ordered, "root_cause", json_object_get(top, "root_cause"));
    const char *k;
    json_t *v;
    json_object_foreach(cause, k, v) json_object_set(ordered, k, v);
    json_decref(top);
    json_decref(cause);
    return json_pack("{s:o, s:i}", "error", ordered, "status", status);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 413: return "Request Entity Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

int parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    if (*end == '\0' || strcmp(end, "s") == 0)
        v *= 1000;
    else if (strcmp(end, "ms") == 0)
        ;
    else if (strcmp(end, "m") == 0)
        v *= 60000;
    else
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -EINVAL;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    else if (*end == 'g' || *end == 'G')
        v <<= 30, end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end)
        return -EINVAL;
    *out = (size_t)v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* filter_path: comma-separated dotted paths with '*' and '**' wildcards.
 * Objects and arrays left empty disappear, as in ES.                      */

struct fpath {
    char *segs[16];
    size_t nseg;
};

struct fstate {
    unsigned short path, pos;
};

bool glob_match(const char *pat, const char *s)
{
    if (*pat == '\0')
        return *s == '\0';
    if (*pat == '*') {
        for (;; s++) {
            if (glob_match(pat + 1, s))
                return true;
            if (*s == '\0')
                return false;
        }
    }
    return *pat == *s && glob_match(pat + 1, s + 1);
}

static size_t fpath_parse(char *spec, struct fpath *paths, size_t max)
{
    size_t n = 0;
    char *save = NULL;

    for (char *p = strtok_r(spec, ",", &save); p && n < max; p = strtok_r(NULL, ",", &save)) {
        char *s2 = NULL;
        while (*p == ' ')
            p++;
        if (*p == '\0' || *p == '-') /* exclusions are not supported */
            continue;
        paths[n].nseg = 0;
        for (char *q = strtok_r(p, ".", &s2); q && paths[n].nseg < 16; q = strtok_r(NULL, ".", &s2))
            paths[n].segs[paths[n].nseg++] = q;
        if (paths[n].nseg)
            n++;
    }
    return n;
}

/* The states after descending into member key; *all when some path ends
 * there (keep the whole value).  Returns the number of live states. */
static size_t fstep(const struct fpath *paths, const struct fstate *st, size_t n, const char *key,
                    struct fstate *next, bool *all)
{
    size_t nn = 0;

    *all = false;
    for (size_t i = 0; i < n && nn + 2 <= FSTATES_MAX; i++) {
        const struct fpath *fp = &paths[st[i].path];
        const char *seg = fp->segs[st[i].pos];
        if (strcmp(seg, "**") == 0) {
            next[nn++] = st[i]; /* one level more */
            if (st[i].pos + 1u < fp->nseg && glob_match(fp->segs[st[i].pos + 1], key))
                next[nn++] = (struct fstate){ st[i].path, (unsigned short)(st[i].pos + 2) };
            else if (st[i].pos + 1u == fp->nseg)
                next[nn++] = (struct fstate){ st[i].path, (unsigned short)(st[i].pos + 1) };
        } else if (glob_match(seg, key)) {
            next[nn++] = (struct fstate){ st[i].path, (unsigned short)(st[i].pos + 1) };
        }
    }
    for (size_t i = 0; i < nn; i++)
        if (next[i].pos == paths[next[i].path].nseg)
            *all = true;
    return nn;
}

static json_t *filter_node(json_t *v, const struct fpath *paths, const struct fstate *st, size_t n)
{
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            json_t *f = filter_node(e, paths, st, n);
            if (f)
                json_array_append_new(out, f);
        }
        if (json_array_size(out))
            return out;
        json_decref(out);
        return NULL;
    }
    if (!json_is_object(v))
        return NULL;
    json_t *out = json_object();
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        struct fstate next[FSTATES_MAX];
        bool all;
        size_t nn = fstep(paths, st, n, k, next, &all);
        json_t *f = all ? json_incref(e) : nn ? filter_node(e, paths, next, nn) : NULL;
        if (f)
            json_object_set_new(out, k, f);
    }
    if (json_object_size(out))
        return out;
    json_decref(out);
    return NULL;
}

/* Returns a new reference: the filtered document, or {} when nothing is left. */
static json_t *filter_apply(json_t *root, const char *spec)
{
    struct fpath paths[MAX_PATHS];
    struct fstate st[MAX_PATHS];
    char *copy = strdup(spec);
    size_t n = copy ? fpath_parse(copy, paths, MAX_PATHS) : 0;
    json_t *out;

    if (!n) {
        free(copy);
        return json_incref(root);
    }
    for (size_t i = 0; i < n; i++)
        st[i] = (struct fstate){ (unsigned short)i, 0 };
    out = filter_node(root, paths, st, n);
    free(copy);
    return out ? out : json_object();
}

/* Writing JSON text directly while applying a filter: each member is
 * written only if the filter keeps it, and an object or array that ends up
 * empty is rolled back, so the output equals filter_apply() of the full
 * document without building it.  A set with all=true keeps everything. */
struct fset {
    struct fstate st[FSTATES_MAX];
    size_t n;
    bool all;
};

struct emitter {
    struct buf *b;
    const struct fpath *paths;
};

/* 0: skip the member, 1: write it whole, 2: descend with *child. */
static int em_child(const struct emitter *em, const struct fset *in, const char *key,
                    struct fset *child)
{
    if (in->all) {
        child->all = true;
        child->n = 0;
        return 1;
    }
    child->n = fstep(em->paths, in->st, in->n, key, child->st, &child->all);
    return child->all ? 1 : child->n ? 2 : 0;
}

static void em_sep(struct buf *b)
{
    char last = b->len ? b->ptr[b->len - 1] : '{';

    if (last != '{' && last != '[')
        buf_putc(b, ',');
}

static void em_key(struct buf *b, const char *key)
{
    em_sep(b);
    buf_putc(b, '"');
    buf_puts(b, key); /* keys here are fixed identifiers */
    buf_puts(b, "\":");
}

static void em_int(const struct emitter *em, const struct fset *s, const char *key, int64_t v)
{
    struct fset c;

    if (em_child(em, s, key, &c) == 1) {
        em_key(em->b, key);
        buf_printf(em->b, "%" PRId64, v);
    }
}

static void em_raw(const struct emitter *em, const struct fset *s, const char *key,
                   const char *text)
{
    struct fset c;

    if (em_child(em, s, key, &c) == 1) {
        em_key(em->b, key);
        buf_puts(em->b, text);
    }
}

static void em_str(const struct emitter *em, const struct fset *s, const char *key,
                   const char *v)
{
    struct fset c;

    if (em_child(em, s, key, &c) == 1) {
        em_key(em->b, key);
        put_json_str(em->b, v, strlen(v));
    }
}

static void em_json(const struct emitter *em, const struct fset *s, const char *key, json_t *v)
{
    struct fset c;
    int k = em_child(em, s, key, &c);
    json_t *f = k == 1 ? json_incref(v) : k == 2 ? filter_node(v, em->paths, c.st, c.n) : NULL;

    if (f) {
        em_key(em->b, key);
        json_dump_callback(f, dump_cb, em->b, JSON_COMPACT);
        json_decref(f);
    }
}

/* Opens a container member (key NULL: an array element); false to skip. */
static bool em_open(const struct emitter *em, const struct fset *s, const char *key, char open,
                    struct fset *child, size_t *mark)
{
    *mark = em->b->len;
    if (key) {
        if (!em_child(em, s, key, child))
            return false;
        em_key(em->b, key);
    } else {
        *child = *s;
        em_sep(em->b);
    }
    buf_putc(em->b, open);
    return true;
}

static void em_close(const struct emitter *em, const struct fset *child, size_t mark, char close)
{
    char last = em->b->ptr[em->b->len - 1];

    if (!child->all && (last == '{' || last == '['))
        buf_truncate(em->b, mark); /* nothing kept inside: drop it, as ES does */
    else
        buf_putc(em->b, close);
}

static void em_item(const struct emitter *em, const struct fset *s, const struct item_res *it)
{
    struct fset el, op, sh;
    size_t m_el, m_op, m_sh;

    if (!em_open(em, s, NULL, '{', &el, &m_el))
        return;
    if (em_open(em, &el, op_name[it->op], '{', &op, &m_op)) {
        em_str(em, &op, "_index", it->index);
        em_str(em, &op, "_id", it->id);
        if (it->error) {
            em_int(em, &op, "status", it->status);
            em_json(em, &op, "error", it->error);
        } else {
            em_int(em, &op, "_version", it->version);
            em_str(em, &op, "result", it->result);
            if (em_open(em, &op, "_shards", '{', &sh, &m_sh)) {
                em_int(em, &sh, "total", 2);
                em_int(em, &sh, "successful", 1);
                em_int(em, &sh, "failed", 0);
                em_close(em, &sh, m_sh, '}');
            }
            em_int(em, &op, "_seq_no", it->seq_no);
            em_int(em, &op, "_primary_term", 1);
            em_int(em, &op, "status", it->status);
        }
        em_close(em, &op, m_op, '}');
    }
    em_close(em, &el, m_el, '}');
}

/* The whole bulk reply, filtered by spec (NULL or "" = everything). */
void em_bulk_reply(struct buf *b, const char *spec, int64_t took, bool errors,
                   const struct item_res *items, size_t n)
{
    struct fpath paths[MAX_PATHS];
    char *copy = spec && *spec ? strdup(spec) : NULL;
    struct emitter em = { b, paths };
    struct fset root = { .all = true }, arr;
    size_t np = copy ? fpath_parse(copy, paths, MAX_PATHS) : 0, m;

    if (np) {
        root.all = false;
        root.n = np;
        for (size_t i = 0; i < np; i++)
            root.st[i] = (struct fstate){ (unsigned short)i, 0 };
    }
    buf_putc(b, '{');
    em_int(&em, &root, "took", took);
    em_raw(&em, &root, "errors", errors ? "true" : "false");
    if (em_open(&em, &root, "items", '[', &arr, &m)) {
        for (size_t i = 0; i < n; i++)
            em_item(&em, &arr, &items[i]);
        em_close(&em, &arr, m, ']');
    }
    buf_putc(b, '}');
    free(copy);
}

/* ------------------------------------------------------------------------ */
/* Query strings                                                            */

/* Percent-decodes n bytes of s into a new string ('+' as space when form). */
char *pct_decode(const char *s, size_t n, bool form)
{
    char *out = malloc(n + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            *o++ = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else if (form && s[i] == '+') {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* The decoded value of query parameter name, or NULL; caller frees. */
char *query_param(const char *q, const char *name)
{
    size_t nl = strlen(name);

    while (q && *q) {
        const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        const char *ke = eq ? eq : end;
        if ((size_t)(ke - q) == nl && memcmp(q, name, nl) == 0)
            return eq ? pct_decode(eq + 1, (size_t)(end - eq - 1), true) : strdup("");
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */

const char *req_header(const struct request *r, const char *name)
{
    for (size_t i = 0; i < r->nhdr; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    return NULL;
}

static void on_reset_timer(uv_timer_t *t)
{
    struct conn *c = t->data;

    c->reset_after = true;
    conn_close(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;

    free(w->head);
    free(w->body);
    free(w);
    c->nwrites--;
    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    if (c->nwrites > 0 || c->busy || !c->replied)
        return; /* act after the reply's last write (not after a 100 Continue) */
    if (c->reset_after) { /* let the client read the partial reply, then RST */
        uv_timer_start(&c->timer, on_reset_timer, 50, 0);
        return;
    }
    if (c->close_after) {
        conn_close(c);
        return;
    }
}

int write_now(struct conn *c, char *head, size_t head_len, char *body, size_t body_len)
{
    struct wreq *w = calloc(1, sizeof(*w));
    uv_buf_t bufs[2];
    unsigned nb = 1;
    int rc;

    if (!w) {
        free(head);
        free(body);
        return -ENOMEM;
    }
    w->c = c;
    w->head = head;
    w->body = body;
    bufs[0] = uv_buf_init(head, (unsigned)head_len);
    if (body && body_len)
        bufs[nb++] = uv_buf_init(body, (unsigned)body_len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, nb, on_write);
    if (rc == 0)
        c->nwrites++;
    if (rc < 0) {
        free(head);
        free(body);
        free(w);
        conn_close(c);
    }
    return rc;
}

static void on_delay(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct pending p = c->pend;

    memset(&c->pend, 0, sizeof(c->pend));
    c->busy = false;
    if (p.active && write_now(c, p.head, p.head_len, p.body, p.body_len) < 0)
        return;
    conn_drive(c);
}

static char *gzip_bytes(const char *p, size_t n, size_t *out_len)
{
    z_stream z;
    char *out = NULL;
    uLong bound;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    bound = deflateBound(&z, (uLong)n) + 32;
    out = malloc(bound);
    if (out) {
        z.next_in = (Bytef *)(uintptr_t)p;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)bound;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
            free(out);
            out = NULL;
        } else {
            *out_len = z.total_out;
        }
    }
    deflateEnd(&z);
    return out;
}

/* Sends a reply; takes body (malloc'd or NULL).  extra: "Name: v\r\n" lines. */
void reply(struct conn *c, int status, const char *ctype, const char *extra, char *body,
           size_t len)
{
    struct buf h;
    bool gz = false;
    size_t send_len;

    c->last_status = status;
    c->replied = true;
    if (c->gzip_ok && body && len > 0) {
        size_t zl = 0;
        char *z = gzip_bytes(body, len, &zl);
        if (z) {
            free(body);
            body = z;
            len = zl;
            gz = true;
        }
    }
    buf_init(&h, BUF_NOMAX);
    buf_printf(&h, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    if (ctype)
        buf_printf(&h, "content-type: %s\r\n", ctype);
    if (gz)
        buf_puts(&h, "content-encoding: gzip\r\n");
    buf_printf(&h, "content-length: %zu\r\n", len);
    if (extra)
        buf_puts(&h, extra);
    if (c->close_after)
        buf_puts(&h, "connection: close\r\n");
    buf_puts(&h, "\r\n");
    if (!h.ptr) {
        free(body);
        conn_close(c);
        return;
    }
    send_len = c->is_head ? 0 : len;
    if (c->reset_after)
        send_len = len / 2; /* the headers promise more than will come */
    if (c->delay_ms > 0) {
        c->pend = (struct pending){ .head = h.ptr, .head_len = h.len, .body = body,
                                    .body_len = send_len, .active = true };
        c->busy = true;
        uv_timer_start(&c->timer, on_delay, (uint64_t)c->delay_ms, 0);
        c->delay_ms = 0;
        return;
    }
    write_now(c, h.ptr, h.len, body, send_len);
}

void reply_json(struct conn *c, int status, json_t *body, const char *extra)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    if (json_dump_callback(body, dump_cb, &b, JSON_COMPACT) < 0 || !b.ptr) {
        buf_close(&b);
        json_decref(body);
        conn_close(c);
        return;
    }
    json_decref(body);
    reply(c, status, "application/json; charset=UTF-8", extra, b.ptr, b.len);
}

/* Same, applying the request's filter_path. */
void reply_json_filtered(struct conn *c, const struct request *r, int status, json_t *body)
{
    char *fp = query_param(r->query, "filter_path");

    if (fp && *fp) {
        json_t *f = filter_apply(body, fp);
        json_decref(body);
        body = f;
    }
    free(fp);
    reply_json(c, status, body, NULL);
}

void reply_error(struct conn *c, int status, const char *type, const char *reason)
{
    reply_json(c, status, es_error_body(status, err_obj(type, reason)), NULL);
}
