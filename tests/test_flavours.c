/* flavours: what the search double answers as each deployment (--flavor),
 * and its aliases, data streams and GET /_resolve/index, run against the
 * real program (tests/tools/searchd/offering.c and aliases.c cite what each
 * answer follows). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/searchd_ctl.h"

TestSuite(flavours, .timeout = 30);

static struct searchd *sd;

static void stop(void)
{
    cr_assert_eq(searchd_stop(sd), 0, "searchd did not stop cleanly");
    sd = NULL;
}

static const char *str_at(json_t *j, const char *a, const char *b)
{
    json_t *v = json_object_get(j, a);

    return json_string_value(b ? json_object_get(v, b) : v);
}

static json_t *item(json_t *resp, size_t i)
{
    json_t *it = json_array_get(json_object_get(resp, "items"), i);

    cr_assert(json_is_object(it), "no item %zu", i);
    return json_object_iter_value(json_object_iter(it));
}

static long item_status(json_t *resp, size_t i)
{
    return (long)json_integer_value(json_object_get(item(resp, i), "status"));
}

static const char *item_reason(json_t *resp, size_t i)
{
    return json_string_value(json_object_get(json_object_get(item(resp, i), "error"), "reason"));
}

static json_t *bulk(const char *path, const char *ndjson, long want)
{
    long status = 0;
    json_t *r = searchd_bulk(sd, path, ndjson, &status);

    cr_assert_eq(status, want, "bulk answered %ld", status);
    return r;
}

static long status_of(const char *method, const char *path, const char *body, json_t **out)
{
    long status = 0;
    json_t *j = searchd_json(sd, method, path, body, &status);

    if (out)
        *out = j;
    else
        json_decref(j);
    return status;
}

/* ---- GET / ---------------------------------------------------------------- */

Test(flavours, each_flavour_answers_get_root_its_own_way)
{
    json_t *j;
    struct searchd_resp r;

    sd = searchd_start(NULL);
    cr_assert_eq(status_of("GET", "/", NULL, &j), 200);
    cr_expect_str_eq(str_at(j, "version", "distribution"), "opensearch");
    cr_expect_str_eq(str_at(j, "version", "number"), "2.11.0");
    json_decref(j);
    stop();

    sd = searchd_start("--flavor", "es8", "--engine-version", "8.18.1", NULL);
    cr_assert_eq(status_of("GET", "/", NULL, &j), 200);
    cr_expect_str_eq(str_at(j, "version", "number"), "8.18.1");
    cr_expect_str_eq(str_at(j, "version", "build_flavor"), "default");
    cr_expect_str_eq(str_at(j, "tagline", NULL), "You Know, for Search");
    json_decref(j);
    stop();

    sd = searchd_start("--flavour", "elastic-serverless", NULL);
    cr_assert_eq(status_of("GET", "/", NULL, &j), 200);
    cr_expect_str_eq(str_at(j, "version", "build_flavor"), "serverless");
    cr_expect_str_eq(str_at(j, "version", "number"), "8.11.0");
    json_decref(j);
    stop();

    sd = searchd_start("--flavor", "aoss-search", NULL);
    cr_assert_eq(searchd_request(sd, "GET", "/", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 404, "OpenSearch Serverless has no GET /");
    cr_expect_eq(r.len, 0, "and answers it with an empty body");
    searchd_resp_close(&r);
    stop();
}

Test(flavours, cluster_apis_are_gone_on_serverless)
{
    json_t *j;
    struct searchd_resp r;

    sd = searchd_start("--flavor", "elastic-serverless", NULL);
    cr_assert_eq(status_of("GET", "/_cluster/health", NULL, &j), 410);
    cr_expect_str_eq(str_at(j, "error", "type"), "api_not_available_exception");
    cr_expect_str_eq(str_at(j, "error", "reason"),
                     "Request for uri [/_cluster/health] with method [GET] exists but is not "
                     "available when running in serverless mode");
    json_decref(j);
    cr_expect_eq(status_of("GET", "/_nodes/stats", NULL, NULL), 410);
    stop();

    sd = searchd_start("--flavor", "aoss-timeseries", NULL);
    cr_assert_eq(searchd_request(sd, "GET", "/_cluster/health", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 404);
    searchd_resp_close(&r);
    stop();

    sd = searchd_start(NULL);
    cr_assert_eq(status_of("GET", "/_cluster/health", NULL, &j), 200);
    cr_expect_str_eq(str_at(j, "status", NULL), "green");
    json_decref(j);
    stop();
}

/* ---- query parameters ------------------------------------------------------- */

static long bulk_with_source_param(void)
{
    long status = 0;
    json_t *r = searchd_bulk(sd, "/_bulk?include_source_on_error=false",
                             "{\"index\":{\"_index\":\"t\",\"_id\":\"a\"}}\n{}\n", &status);

    if (status == 400)
        cr_expect_str_eq(str_at(r, "error", "reason"),
                         "request [/_bulk] contains unrecognized parameter: "
                         "[include_source_on_error]");
    json_decref(r);
    return status;
}

Test(flavours, include_source_on_error_is_known_from_elasticsearch_8_18)
{
    sd = searchd_start(NULL);
    cr_expect_eq(bulk_with_source_param(), 400, "OpenSearch does not know it");
    stop();
    sd = searchd_start("--flavor", "es8", NULL);
    cr_expect_eq(bulk_with_source_param(), 400, "nor Elasticsearch 8.15");
    stop();
    sd = searchd_start("--flavor", "es8", "--engine-version", "8.18.0", NULL);
    cr_expect_eq(bulk_with_source_param(), 200);
    stop();
    sd = searchd_start("--flavor", "es8", "--engine-version", "9.0.2", NULL);
    cr_expect_eq(bulk_with_source_param(), 200);
    stop();
    sd = searchd_start("--flavor", "elastic-serverless", NULL);
    cr_expect_eq(bulk_with_source_param(), 200, "a project runs the newest code");
    stop();
    sd = searchd_start("--flavor", "aoss-search", NULL);
    cr_expect_eq(bulk_with_source_param(), 400);
    stop();
}

/* ---- document ids, body caps, settings -------------------------------------- */

Test(flavours, a_time_series_collection_refuses_client_ids)
{
    json_t *r;

    sd = searchd_start("--flavor", "aoss-timeseries", NULL);
    r = bulk("/_bulk", "{\"index\":{\"_index\":\"t\",\"_id\":\"a\"}}\n{\"n\":1}\n"
                       "{\"create\":{\"_index\":\"t\",\"_id\":\"b\"}}\n{\"n\":1}\n"
                       "{\"index\":{\"_index\":\"t\"}}\n{\"n\":2}\n"
                       "{\"delete\":{\"_index\":\"t\",\"_id\":\"a\"}}\n", 200);
    cr_expect_eq(item_status(r, 0), 400);
    cr_expect_str_eq(item_reason(r, 0),
                     "Document ID is not supported in create/index operation request");
    cr_expect_eq(item_status(r, 1), 400);
    cr_expect_eq(item_status(r, 2), 201, "an id the collection makes is fine");
    cr_expect_eq(item_status(r, 3), 404, "a delete by id is no index or create");
    json_decref(r);
    cr_expect_eq(status_of("PUT", "/t/_doc/x", "{}", NULL), 400);
    stop();

    sd = searchd_start("--flavor", "aoss-search", NULL);
    r = bulk("/_bulk", "{\"index\":{\"_index\":\"t\",\"_id\":\"a\"}}\n{\"n\":1}\n", 200);
    cr_expect_eq(item_status(r, 0), 201, "a search collection takes ids");
    json_decref(r);
    stop();
}

Test(flavours, serverless_collections_cap_bodies_at_10_mib)
{
    /* eleven documents of a MiB each: big, but quick to parse */
    size_t n = 11, doc = (size_t)1 << 20;
    char *body = malloc(n * (doc + 64) + 1), *p = body;
    long status = 0;
    json_t *r;

    for (size_t i = 0; i < n; i++) {
        p += sprintf(p, "{\"index\":{\"_index\":\"t\"}}\n{\"k\":\"");
        memset(p, 'x', doc);
        p += doc;
        p += sprintf(p, "\"}\n");
    }
    sd = searchd_start("--flavor", "aoss-search", NULL);
    r = searchd_bulk(sd, "/_bulk", body, &status);
    cr_expect_eq(status, 413, "an 11 MiB body");
    json_decref(r);
    stop();
    sd = searchd_start(NULL);
    r = searchd_bulk(sd, "/_bulk", body, &status);
    cr_expect_eq(status, 200, "a domain takes it");
    json_decref(r);
    stop();
    free(body);
}

Test(flavours, a_serverless_project_does_not_take_gc_deletes)
{
    json_t *j;

    sd = searchd_start("--flavor", "elastic-serverless", NULL);
    cr_assert_eq(status_of("PUT", "/t", "{\"settings\":{\"index\":{\"gc_deletes\":\"10m\"}}}", &j),
                 400);
    cr_expect_str_eq(str_at(j, "error", "reason"),
                     "Settings [index.gc_deletes] not available in serverless mode");
    json_decref(j);
    cr_assert_eq(status_of("PUT", "/t", "{}", NULL), 200);
    cr_expect_eq(status_of("PUT", "/t/_settings", "{\"index.gc_deletes\":\"10m\"}", NULL), 400);
    stop();

    sd = searchd_start("--flavor", "es8", NULL);
    cr_expect_eq(status_of("PUT", "/t", "{\"settings\":{\"index\":{\"gc_deletes\":\"10m\"}}}",
                           NULL), 200);
    stop();
}

Test(flavours, without_external_versions_an_older_write_wins)
{
    json_t *r;

    sd = searchd_start("--no-external-versions", NULL);
    r = bulk("/_bulk",
             "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":2,\"version_type\":\"external\"}}\n{\"n\":2}\n"
             "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":1,\"version_type\":\"external\"}}\n{\"n\":1}\n",
             200);
    cr_expect_eq(item_status(r, 0), 201);
    cr_expect_eq(item_status(r, 1), 200, "version 1 over version 2: no conflict");
    json_decref(r);
    cr_assert_eq(searchd_config(sd, "{\"external_versions\":true}"), 200);
    r = bulk("/_bulk",
             "{\"index\":{\"_index\":\"t\",\"_id\":\"b\",\"version\":2,\"version_type\":\"external\"}}\n{}\n"
             "{\"index\":{\"_index\":\"t\",\"_id\":\"b\",\"version\":1,\"version_type\":\"external\"}}\n{}\n",
             200);
    cr_expect_eq(item_status(r, 1), 409);
    json_decref(r);
    stop();
}

/* ---- aliases, data streams, resolve ----------------------------------------- */

Test(flavours, writes_through_an_alias_go_to_its_write_index)
{
    json_t *r, *j;

    sd = searchd_start(NULL);
    cr_assert_eq(status_of("PUT", "/posts-1", "{\"aliases\":{\"posts\":{}}}", NULL), 200);
    cr_assert_eq(status_of("GET", "/_resolve/index/posts", NULL, &j), 200);
    cr_expect_eq(json_array_size(json_object_get(j, "indices")), 0);
    cr_expect_str_eq(str_at(json_array_get(json_object_get(j, "aliases"), 0), "name", NULL),
                     "posts");
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(json_array_get(
                         json_object_get(j, "aliases"), 0), "indices"), 0)), "posts-1");
    json_decref(j);
    r = bulk("/_bulk", "{\"index\":{\"_index\":\"posts\",\"_id\":\"a\"}}\n{}\n", 200);
    cr_expect_eq(item_status(r, 0), 201);
    cr_expect_str_eq(str_at(item(r, 0), "_index", NULL), "posts-1", "the concrete index");
    json_decref(r);

    /* a second index and no write index: writes fail */
    cr_assert_eq(status_of("PUT", "/posts-2", "{\"aliases\":{\"posts\":{}}}", NULL), 200);
    r = bulk("/_bulk", "{\"index\":{\"_index\":\"posts\",\"_id\":\"b\"}}\n{}\n", 200);
    cr_expect_eq(item_status(r, 0), 400);
    cr_expect(strstr(item_reason(r, 0), "no write index is defined for alias [posts]") != NULL);
    json_decref(r);

    /* is_write_index picks one */
    cr_assert_eq(status_of("POST", "/_aliases",
                           "{\"actions\":[{\"add\":{\"index\":\"posts-2\",\"alias\":\"posts\","
                           "\"is_write_index\":true}}]}", NULL), 200);
    cr_assert_eq(status_of("GET", "/_alias/posts", NULL, &j), 200);
    cr_expect(json_is_true(json_object_get(json_object_get(json_object_get(json_object_get(
                  j, "posts-2"), "aliases"), "posts"), "is_write_index")));
    cr_expect_not_null(json_object_get(j, "posts-1"));
    json_decref(j);
    r = bulk("/_bulk", "{\"index\":{\"_index\":\"posts\",\"_id\":\"b\"}}\n{}\n", 200);
    cr_expect_str_eq(str_at(item(r, 0), "_index", NULL), "posts-2");
    json_decref(r);
    cr_assert_eq(status_of("GET", "/posts/_count", NULL, &j), 200);
    cr_expect_eq(json_integer_value(json_object_get(j, "count")), 2, "reads take both indices");
    json_decref(j);
    cr_expect_eq(status_of("GET", "/_alias/nope", NULL, NULL), 404);
    cr_expect_eq(status_of("PUT", "/posts", "{}", NULL), 400, "the name is an alias's");
    stop();
}

Test(flavours, a_data_stream_takes_only_creates)
{
    json_t *r, *j;

    sd = searchd_start("--flavor", "es8", NULL);
    cr_assert_eq(status_of("PUT", "/_data_stream/logs", NULL, NULL), 200);
    cr_assert_eq(status_of("GET", "/_resolve/index/logs", NULL, &j), 200);
    cr_expect_str_eq(str_at(json_array_get(json_object_get(j, "data_streams"), 0), "name", NULL),
                     "logs");
    cr_expect_eq(json_array_size(json_object_get(j, "indices")), 0);
    json_decref(j);
    r = bulk("/_bulk", "{\"index\":{\"_index\":\"logs\",\"_id\":\"a\"}}\n{}\n"
                       "{\"create\":{\"_index\":\"logs\",\"_id\":\"a\"}}\n{}\n"
                       "{\"delete\":{\"_index\":\"logs\",\"_id\":\"a\"}}\n", 200);
    cr_expect_eq(item_status(r, 0), 400);
    cr_expect_str_eq(item_reason(r, 0),
                     "only write ops with an op_type of create are allowed in data streams");
    cr_expect_eq(item_status(r, 1), 201);
    cr_expect_str_eq(str_at(item(r, 1), "_index", NULL), ".ds-logs-000001");
    cr_expect_eq(item_status(r, 2), 400);
    json_decref(r);
    stop();
}

Test(flavours, resolve_names_indices_and_refuses_a_missing_name)
{
    json_t *j;

    sd = searchd_start(NULL);
    cr_assert_eq(status_of("PUT", "/posts", "{}", NULL), 200);
    cr_assert_eq(status_of("GET", "/_resolve/index/posts", NULL, &j), 200);
    cr_expect_str_eq(str_at(json_array_get(json_object_get(j, "indices"), 0), "name", NULL),
                     "posts");
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(json_array_get(
                         json_object_get(j, "indices"), 0), "attributes"), 0)), "open");
    json_decref(j);
    cr_assert_eq(status_of("GET", "/_resolve/index/nope", NULL, &j), 404);
    cr_expect_str_eq(str_at(j, "error", "type"), "index_not_found_exception");
    json_decref(j);
    cr_assert_eq(status_of("GET", "/_resolve/index/nope*", NULL, &j), 200);
    cr_expect_eq(json_array_size(json_object_get(j, "indices")), 0);
    json_decref(j);
    stop();
}

Test(flavours, the_double_lists_the_requests_it_saw)
{
    json_t *log, *e;

    sd = searchd_start(NULL);
    cr_assert_eq(status_of("GET", "/_resolve/index/x", NULL, NULL), 404);
    json_decref(bulk("/_bulk?refresh=false", "{\"index\":{\"_index\":\"t\"}}\n{}\n", 200));
    log = searchd_requests(sd);
    cr_assert_eq(json_array_size(log), 2, "control requests are not listed");
    e = json_array_get(log, 0);
    cr_expect_str_eq(str_at(e, "method", NULL), "GET");
    cr_expect_str_eq(str_at(e, "path", NULL), "/_resolve/index/x");
    cr_expect_eq(json_integer_value(json_object_get(e, "status")), 404);
    e = json_array_get(log, 1);
    cr_expect_str_eq(str_at(e, "path", NULL), "/_bulk");
    cr_expect_str_eq(str_at(e, "query", NULL), "refresh=false");
    json_decref(log);
    stop();
}
