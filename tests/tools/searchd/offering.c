#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Flavours: what each deployment answers differently                       */
/*
 * --flavor picks the engine's document rules (os2, es8) and the deployment:
 *
 *   os2, opensearch2     OpenSearch 2.11, self-managed or an Amazon OpenSearch
 *                        Service domain (the default)
 *   es8                  Elasticsearch 8.15 (--engine-version for another)
 *   aoss-search          an Amazon OpenSearch Serverless search collection
 *   aoss-timeseries      an Amazon OpenSearch Serverless time series collection
 *   elastic-serverless   an Elastic Cloud Serverless project
 *
 * Each difference below names the documentation or source it follows.     */

int parse_flavor(const char *s, enum flavor *fl, enum offering *of)
{
    static const struct {
        const char *name;
        enum flavor fl;
        enum offering of;
    } names[] = {
        { "os2", FL_OS2, OF_SELF },
        { "opensearch2", FL_OS2, OF_SELF },
        { "es8", FL_ES8, OF_SELF },
        { "aoss-search", FL_OS2, OF_AOSS_SEARCH },
        { "aoss-timeseries", FL_OS2, OF_AOSS_TIMESERIES },
        { "elastic-serverless", FL_ES8, OF_ELASTIC_SERVERLESS },
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *fl = names[i].fl;
            *of = names[i].of;
            return 0;
        }
    return -EINVAL;
}

static bool aoss(void)
{
    return srv.set.offering == OF_AOSS_SEARCH || srv.set.offering == OF_AOSS_TIMESERIES;
}

/* The version GET / reports.  An Elastic Cloud Serverless project reports
 * 8.11.0 with build_flavor "serverless", whatever code it runs (the GET /
 * of a QA project shown in the elasticsearch-serverless repository's
 * README; name "serverless", build_hash "00000000"). */
const char *engine_version(void)
{
    if (srv.set.engine_version)
        return srv.set.engine_version;
    switch (srv.set.offering) {
    case OF_ELASTIC_SERVERLESS: return "8.11.0";
    case OF_SELF: return srv.set.flavor == FL_ES8 ? "8.15.0" : "2.11.0";
    default: return "2.11.0";
    }
}

/* v (MAJOR.MINOR[.PATCH...]) is at least major.minor. */
bool version_at_least(const char *v, int major, int minor)
{
    char *end;
    long a = strtol(v, &end, 10), b = *end == '.' ? strtol(end + 1, NULL, 10) : 0;

    return a > major || (a == major && b >= minor);
}

/* The body cap when --max-body was not given.  Amazon OpenSearch Serverless
 * takes bulk bodies up to 10 MiB (the Migration Assistant for Amazon
 * OpenSearch Service guide, "Limits and considerations": requests are
 * capped at documentsSizePerBulkRequest, 10 MiB, for Serverless targets);
 * others http.max_content_length, 100mb. */
size_t flavour_max_body(void)
{
    return aoss() ? (size_t)10 << 20 : (size_t)100 << 20;
}

void handle_root(struct conn *c)
{
    /* Amazon OpenSearch Serverless has no GET /: the collection answers 404
     * with an empty body (opensearch-project/OpenSearch-Dashboards#5707 shows
     * client.info() on a collection: statusCode 404, body '', server
     * aoss-amazon; the operations it serves are listed in the developer
     * guide, "Supported operations and plugins in Amazon OpenSearch
     * Serverless", and / is not among them). */
    if (aoss()) {
        reply(c, 404, "application/json; charset=UTF-8", "server: aoss-amazon\r\n", NULL, 0);
        return;
    }
    if (srv.set.offering == OF_ELASTIC_SERVERLESS) {
        reply_json(c, 200, json_pack(
            "{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}, s:s}", "name",
            "serverless", "cluster_name", "ddb2es-double", "cluster_uuid",
            "searchd-double-uuid-000000", "version", "number", engine_version(), "build_flavor",
            "serverless", "build_type", "docker", "build_hash", "00000000", "build_date",
            "2023-10-31", "build_snapshot", false, "lucene_version", "9.7.0",
            "minimum_wire_compatibility_version", "8.11.0",
            "minimum_index_compatibility_version", "8.11.0", "tagline", "You Know, for Search"),
                   NULL);
        return;
    }
    if (srv.set.flavor == FL_ES8) {
        reply_json(c, 200, json_pack(
            "{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}, s:s}", "name", "searchd",
            "cluster_name", "ddb2es-double", "cluster_uuid", "searchd-double-uuid-000000",
            "version", "number", engine_version(), "build_flavor", "default", "build_type", "tar",
            "build_hash", "searchd", "build_snapshot", false, "lucene_version", "9.11.1",
            "minimum_wire_compatibility_version", "7.17.0",
            "minimum_index_compatibility_version", "7.0.0", "tagline",
            "You Know, for Search"), NULL);
        return;
    }
    json_t *b = json_pack(
        "{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}, s:s}", "name",
        "searchd", "cluster_name", "ddb2es-double", "cluster_uuid", "searchd-double-uuid-000000",
        "version", "distribution", "opensearch", "number", engine_version(), "build_type", "tar",
        "build_hash", "searchd", "build_date", "2023-10-13T02:55:55.511945994Z",
        "build_snapshot", false, "lucene_version", "9.7.0",
        "minimum_wire_compatibility_version", "7.10.0", "minimum_index_compatibility_version",
        "7.0.0", "tagline", "The OpenSearch Project: https://opensearch.org/");
    reply_json(c, 200, b, NULL);
}

/* /_cluster/..., /_nodes/...: infrastructure an engine manages itself.
 * Elastic Cloud Serverless refuses every operation under _cluster and _nodes
 * with 410 api_not_available_exception ("Differences from other
 * Elasticsearch offerings", API availability; the reply's shape and
 * RestStatus.GONE as the serverless operator-only REST tests assert it).
 * Amazon OpenSearch Serverless does not serve them: 404, empty, as for /
 * (open-metadata/OpenMetadata#27599: /_cluster/stats, /_cluster/health and
 * /_nodes/stats answer 404 on a collection).  Self-managed: GET
 * /_cluster/health, green and one node; the rest is not modelled. */
void handle_cluster(struct conn *c, const struct request *r)
{
    char reason[600];

    if (srv.set.offering == OF_ELASTIC_SERVERLESS) {
        snprintf(reason, sizeof(reason), "Request for uri [%s] with method [%s] exists but is not "
                 "available when running in serverless mode", r->path, r->method);
        reply_json(c, 410, es_error_body(410, err_obj("api_not_available_exception", reason)),
                   NULL);
        return;
    }
    if (aoss()) {
        reply(c, 404, "application/json; charset=UTF-8", "server: aoss-amazon\r\n", NULL, 0);
        return;
    }
    if (r->nseg == 2 && is(r->segs[0], "_cluster") && is(r->segs[1], "health") &&
        (is(r->method, "GET") || is(r->method, "HEAD"))) {
        reply_json(c, 200, json_pack("{s:s, s:s, s:b, s:i, s:i}", "cluster_name",
                                     "ddb2es-double", "status", "green", "timed_out", false,
                                     "number_of_nodes", 1, "number_of_data_nodes", 1), NULL);
        return;
    }
    reply_no_handler(c, r);
}

/* Query parameters a flavour does not know.  include_source_on_error
 * (create, index, update and bulk) came with Elasticsearch 8.18
 * (elastic/elasticsearch#120725, backported to 8.x in #121010); an
 * Elastic Cloud Serverless project runs the newest code.  Elasticsearch
 * before it and OpenSearch refuse an unknown parameter of a REST handler
 * (BaseRestHandler#unrecognized: "request [<path>] contains unrecognized
 * parameter: [<name>]", 400 illegal_argument_exception).  Amazon OpenSearch
 * Serverless is assumed to refuse it as OpenSearch does.  True when the
 * reply was sent. */
bool query_refused(struct conn *c, const struct request *r)
{
    char *v = query_param(r->query, "include_source_on_error"), reason[600];
    bool known = srv.set.offering == OF_ELASTIC_SERVERLESS ||
                 (srv.set.flavor == FL_ES8 && version_at_least(engine_version(), 8, 18));

    free(v);
    if (!v || known)
        return false;
    snprintf(reason, sizeof(reason), "request [%s] contains unrecognized parameter: "
             "[include_source_on_error]", r->path);
    reply_error(c, 400, "illegal_argument_exception", reason);
    return true;
}

/* A document id sent by the client, where the collection makes its own.
 * OpenSearch Serverless time series (and vector search) collections refuse
 * an index or create action that names its _id: item 400
 * illegal_argument_exception "Document ID is not supported in create/index
 * operation request" (langchain-ai/langchainjs#4346 quotes the bulk reply;
 * the developer guide's operations table allows PUT <index>/_doc/<id> and
 * _create/<id> "for search collection types only").  NULL when allowed. */
json_t *id_refused(const struct op *o)
{
    if (srv.set.offering != OF_AOSS_TIMESERIES || o->auto_id ||
        (o->type != OP_INDEX && o->type != OP_CREATE))
        return NULL;
    return err_obj("illegal_argument_exception",
                   "Document ID is not supported in create/index operation request");
}

/* Index settings a project may not set.  Elastic Cloud Serverless projects
 * restrict index settings to a documented subset ("Index settings",
 * Settings supported in Serverless): index.gc_deletes is not in it, nor the
 * shard and replica counts, which the platform manages; a create index
 * request that gives them is refused with 400 "Settings [index.number_of_
 * shards,...] not available in serverless mode" (as reported by users).
 * flat holds normalised keys.  NULL, or the error. */
json_t *settings_refused(const json_t *flat)
{
    static const char *const managed[] = { "index.gc_deletes", "index.number_of_shards",
                                           "index.number_of_replicas" };
    struct buf names;
    json_t *e = NULL;

    if (srv.set.offering != OF_ELASTIC_SERVERLESS)
        return NULL;
    buf_init(&names, BUF_NOMAX);
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
        if (json_object_get(flat, managed[i]) && !json_is_null(json_object_get(flat, managed[i])))
            buf_printf(&names, "%s%s", names.len ? "," : "", managed[i]);
    if (names.len)
        e = errf("illegal_argument_exception", "Settings [%s] not available in serverless mode",
                 names.ptr);
    buf_close(&names);
    return e;
}
