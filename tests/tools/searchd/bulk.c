#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Bulk                                                                     */

/* Whole-request failure while reading the body. */
struct bulk_fail {
    int status;
    char type[64];
    char reason[512];
};

static int bad_line(struct bulk_fail *f, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad_line(struct bulk_fail *f, const char *type, const char *fmt, ...)
{
    va_list ap;

    f->status = 400;
    snprintf(f->type, sizeof(f->type), "%s", type);
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Reads a version that may come as a number or a numeric string. */
static int json_to_long(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        char *end;
        errno = 0;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (errno || *end || end == json_string_value(v))
            return -ERANGE;
        *out = x;
        return 0;
    }
    return -EINVAL;
}

int parse_vtype(const char *s, enum vtype *out)
{
    if (strcmp(s, "internal") == 0)
        *out = VT_INTERNAL;
    else if (strcmp(s, "external") == 0 || strcmp(s, "external_gt") == 0)
        *out = VT_EXTERNAL;
    else if (strcmp(s, "external_gte") == 0)
        *out = VT_EXTERNAL_GTE;
    else
        return -EINVAL;
    return 0;
}

/* Parses one action line into o.  lineno counts from 1, as ES reports it. */
static int parse_action(const char *line, size_t len, size_t lineno, const char *def_index,
                        struct op *o, struct bulk_fail *f)
{
    json_error_t jerr;
    /* Jackson takes any \u escape in names and values, \u0000 and lone
     * surrogates included (ENGINE-RULES.md section 4): so does this. */
    json_t *root = jsonx_loadb(line, len, 0, &jerr), *meta;
    const char *opname, *k;
    json_t *v;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    o->version = VERSION_UNSET;
    o->if_seq_no = o->if_primary_term = -2;
    if (!root) {
        if (strstr(jerr.text, "too big"))
            return bad_line(f, "illegal_argument_exception",
                            "Numeric value out of range of long (-9223372036854775808 - "
                            "9223372036854775807) in action/metadata line [%zu]", lineno);
        return bad_line(f, "x_content_parse_exception", "[%zu:%d] %s", lineno, jerr.column,
                        jerr.text);
    }
    if (!json_is_object(root) || json_object_size(root) != 1) {
        json_decref(root);
        return bad_line(f, "illegal_argument_exception",
                        "Malformed action/metadata line [%zu], expected START_OBJECT or "
                        "END_OBJECT but found [%s]", lineno,
                        json_is_object(root) ? "FIELD_NAME" : "VALUE");
    }
    opname = json_object_iter_key(json_object_iter(root));
    meta = json_object_iter_value(json_object_iter(root));
    for (o->type = 0; o->type < OP_N; o->type++)
        if (strcmp(opname, op_name[o->type]) == 0)
            break;
    if (o->type == OP_N) {
        rc = bad_line(f, "illegal_argument_exception",
                      "Malformed action/metadata line [%zu], expected field [create], [delete], "
                      "[index] or [update] but found [%s]", lineno, opname);
        goto out;
    }
    if (!json_is_object(meta)) {
        rc = bad_line(f, "illegal_argument_exception",
                      "Malformed action/metadata line [%zu], expected START_OBJECT but found "
                      "[VALUE]", lineno);
        goto out;
    }
    json_object_foreach(meta, k, v) {
        if (strcmp(k, "_index") == 0 && json_is_string(v)) {
            o->index = strdup(json_string_value(v));
        } else if (strcmp(k, "_id") == 0 && (json_is_string(v) || json_is_integer(v))) {
            /* An _id may hold NUL: kept with its length. */
            o->id = json_is_string(v) ? strndup_n(json_string_value(v), json_string_length(v))
                                      : NULL;
            o->id_len = json_is_string(v) ? json_string_length(v) : 0;
            if (json_is_integer(v) && asprintf(&o->id, "%" JSON_INTEGER_FORMAT,
                                               json_integer_value(v)) < 0)
                o->id = NULL;
            if (json_is_integer(v) && o->id)
                o->id_len = strlen(o->id);
        } else if (strcmp(k, "version") == 0) {
            if (json_to_long(v, &o->version) < 0)
                rc = bad_line(f, "illegal_argument_exception",
                              "Numeric value out of range of long in action/metadata line [%zu]",
                              lineno);
        } else if (strcmp(k, "version_type") == 0 && json_is_string(v)) {
            if (strcmp(json_string_value(v), "force") == 0)
                rc = bad_line(f, "illegal_argument_exception",
                              "version type [force] may no longer be used");
            else if (parse_vtype(json_string_value(v), &o->vt) < 0)
                rc = bad_line(f, "illegal_argument_exception", "No version type match [%s]",
                              json_string_value(v));
        } else if (strcmp(k, "if_seq_no") == 0) {
            if (json_to_long(v, &o->if_seq_no) < 0)
                rc = bad_line(f, "illegal_argument_exception", "bad if_seq_no");
        } else if (strcmp(k, "if_primary_term") == 0) {
            if (json_to_long(v, &o->if_primary_term) < 0)
                rc = bad_line(f, "illegal_argument_exception", "bad if_primary_term");
        } else if (strcmp(k, "routing") == 0 || strcmp(k, "pipeline") == 0 ||
                   strcmp(k, "require_alias") == 0 || strcmp(k, "retry_on_conflict") == 0 ||
                   strcmp(k, "_source") == 0 || strcmp(k, "dynamic_templates") == 0) {
            /* accepted; single shard, no pipelines */
        } else {
            rc = bad_line(f, "illegal_argument_exception",
                          "Action/metadata line [%zu] contains an unknown parameter [%s]", lineno,
                          k);
        }
        if (rc)
            break;
    }
    if (!rc && !o->index && def_index)
        o->index = strdup(def_index);
out:
    json_decref(root);
    return rc;
}

/* ES's request validation (BulkRequest.validate): every message, numbered. */
void validate_op(const struct op *o, struct buf *v, int *n)
{
    const char *msgs[4];
    size_t nm = 0;
    char ill[200];

    if (!o->index)
        msgs[nm++] = "index is missing";
    if ((o->type == OP_DELETE || o->type == OP_UPDATE) && !o->id)
        msgs[nm++] = "id is missing";
    if (o->type == OP_UPDATE && o->vt != VT_INTERNAL) {
        snprintf(ill, sizeof(ill), "version type [%s] is not supported by the update API",
                 vtype_upper[o->vt]);
        msgs[nm++] = ill;
    } else if (o->type == OP_CREATE && o->vt != VT_INTERNAL) {
        msgs[nm++] = "create operations only support internal versioning. use index instead";
    } else if (o->vt == VT_INTERNAL && o->version != VERSION_UNSET) {
        msgs[nm++] = "internal versioning can not be used for optimistic concurrency control. "
                     "Please use `if_seq_no` and `if_primary_term` instead";
    } else if (o->vt != VT_INTERNAL && o->version < 0) {
        snprintf(ill, sizeof(ill), "illegal version value [%" PRId64 "] for version type [%s]",
                 o->version, vtype_upper[o->vt]);
        msgs[nm++] = ill;
    }
    for (size_t i = 0; i < nm; i++)
        buf_printf(v, "%d: %s;", ++*n, msgs[i]);
    /* DocWriteRequest#validateDocIdLength names the whole id; BulkRequest
     * #validate makes it a failure of the whole request */
    if (o->id && o->id_len > 512)
        buf_printf(v, "%d: id [%s] is too long, must be no longer than 512 bytes but was: %zu;",
                   ++*n, o->id, o->id_len);
}

/* Which items a per-item fault hits: chosen by position ("items") and, when
 * the rule lists ids, by _id too. */
static bool fault_hits_item(const struct fault *ft, size_t i, const char *id)
{
    bool pos = false;
    size_t k;
    json_t *v;

    switch (ft->items) {
    case IS_ALL: pos = true; break;
    case IS_ODD: pos = i % 2 == 1; break;
    case IS_EVEN: pos = i % 2 == 0; break;
    case IS_FIRST: pos = (long)i < ft->nitems; break;
    }
    if (!pos || !ft->ids)
        return pos;
    json_array_foreach(ft->ids, k, v)
        if (json_string_length(v) == strlen(id) && strcmp(json_string_value(v), id) == 0)
            return true;
    return false;
}

static json_t *injected_item_error(int status, const char *index)
{
    char reason[512];

    switch (status) {
    case 403:
        /* A write block (index.blocks.write: IndexMetadata.INDEX_WRITE_BLOCK,
         * FORBIDDEN/8), as the bulk action reports it for each item of the
         * blocked index (ClusterBlockException's message). */
        snprintf(reason, sizeof(reason), "index [%s] blocked by: [FORBIDDEN/8/index write (api)];",
                 index ? index : "");
        return err_obj("cluster_block_exception", reason);
    case 429:
        return err_obj("es_rejected_execution_exception",
                       "rejected execution of coordinating operation [coordinating_and_primary_"
                       "bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, "
                       "max_coordinating_and_primary_bytes=0]");
    case 503:
        return err_obj("unavailable_shards_exception",
                       "[0] primary shard is not active Timeout: [1m]");
    case 400:
        return err_obj("mapper_parsing_exception", "failed to parse (injected)");
    case 500:
        return err_obj("exception", "injected failure");
    default:
        return err_obj("exception", "injected failure");
    }
}

void handle_bulk(struct conn *c, struct request *r, const char *def_index,
                 const struct fault *item_fault)
{
    const char *p = r->data, *e = r->data + r->data_len;
    struct op *ops = NULL;
    size_t nops = 0, cap = 0, lineno = 0;
    struct bulk_fail f = { 0 };
    struct buf verr;
    int nverr = 0;
    uint64_t t0 = uv_hrtime();
    struct item_res *res = NULL;
    struct buf out;
    char *fp = NULL;
    bool errors = false;

    srv.st.bulk_requests++;
    buf_init(&verr, BUF_NOMAX);
    buf_init(&out, BUF_NOMAX);
    if (query_refused(c, r))
        goto out;
    if (r->data_len == 0) {
        reply_error(c, 400, "parse_exception", "request body is required");
        goto out;
    }
    if (e[-1] != '\n') {
        reply_error(c, 400, "illegal_argument_exception",
                    "The bulk request must be terminated by a newline [\\n]");
        goto out;
    }
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t len = (size_t)(nl - p);
        lineno++;
        if (len && p[len - 1] == '\r')
            len--;
        if (len == 0) { /* blank lines between actions are skipped, as ES does */
            p = nl + 1;
            continue;
        }
        if (nops == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct op *n = realloc(ops, ncap * sizeof(*ops));
            if (!n) {
                reply_error(c, 500, "exception", "out of memory");
                goto out;
            }
            ops = n;
            cap = ncap;
        }
        struct op *o = &ops[nops];
        if (parse_action(p, len, lineno, def_index, o, &f) < 0) {
            op_clear(o);
            reply_error(c, f.status, f.type, f.reason);
            goto out;
        }
        nops++;
        p = nl + 1;
        if (o->type != OP_DELETE) {
            if (p >= e) {
                reply_error(c, 400, "illegal_argument_exception",
                            "The bulk request must be terminated by a newline [\\n]");
                goto out;
            }
            nl = memchr(p, '\n', (size_t)(e - p));
            len = (size_t)(nl - p);
            lineno++;
            if (len && p[len - 1] == '\r')
                len--;
            o->src = p;
            o->src_len = len;
            p = nl + 1;
        }
        validate_op(o, &verr, &nverr);
    }
    if (nops == 0)
        buf_printf(&verr, "%d: no requests added;", ++nverr);
    if (nverr) {
        char *msg = NULL;
        if (asprintf(&msg, "Validation Failed: %s", verr.ptr) < 0)
            msg = NULL;
        reply_error(c, 400, "action_request_validation_exception", msg ? msg : "Validation Failed");
        free(msg);
        goto out;
    }

    res = calloc(nops, sizeof(*res));
    if (!res) {
        reply_error(c, 500, "exception", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nops; i++) {
        struct op *o = &ops[i];
        char idbuf[21];

        if (!o->id) {
            next_auto_id(idbuf);
            o->id = strdup(idbuf);
            o->id_len = o->id ? strlen(o->id) : 0;
            o->auto_id = true;
        }
        res[i].op = o->type;
        res[i].index = o->index;
        res[i].id = o->id ? o->id : "";
        srv.st.actions[o->type]++;
        if (item_fault && fault_hits_item(item_fault, i, res[i].id))
            item_fail(&res[i], item_fault->item_status,
                      injected_item_error(item_fault->item_status, o->index));
        else
            op_execute(o, &res[i]);
        if (res[i].status >= 100 && res[i].status < 600)
            srv.st.items[res[i].status]++;
        if (res[i].error)
            errors = true;
    }
    fp = query_param(r->query, "filter_path");
    buf_init(&out, BUF_NOMAX);
    buf_reserve(&out, nops * (fp ? 48 : 200) + 64);
    em_bulk_reply(&out, fp, (int64_t)((uv_hrtime() - t0) / 1000000), errors, res, nops);
    if (!out.ptr) {
        reply_error(c, 500, "exception", "out of memory");
        goto out;
    }
    {
        size_t len = out.len;
        reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&out), len);
    }
out:
    for (size_t i = 0; res && i < nops; i++)
        json_decref(res[i].error);
    free(res);
    free(fp);
    buf_close(&out);
    for (size_t i = 0; i < nops; i++)
        op_clear(&ops[i]);
    free(ops);
    buf_close(&verr);
}
