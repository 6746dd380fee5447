/* searchd — an Elasticsearch/OpenSearch double for integration tests and
 * benchmarks.  One thread, one libuv loop, its own small HTTP/1.1 parser
 * (keep-alive, Content-Length and chunked bodies, Expect: 100-continue).
 *
 * It answers the Bulk API the way a real node does (versions, tombstones,
 * per-item errors, filter_path, gzip, size cap), a few read endpoints, four
 * kinds of authentication, and a control API under /_double/ (never behind
 * auth) for fault injection and inspection.  `searchd --help` lists options.
 *
 * Bulk semantics, as in ES 7+/OpenSearch 2 (one shard, no replicas):
 * - Request-level 400s: a body not ending in '\n'; a malformed or unknown
 *   action line; a version outside the long range; and BulkRequest.validate()
 *   failures, all reported together as action_request_validation_exception
 *   ("Validation Failed: 1: ...;"): update with a non-internal version type,
 *   create with one, a negative external version (unset prints as [-3], like
 *   ES), an explicit version with internal versioning, a missing index or id.
 * - Item-level: 409 version_conflict_engine_exception with ES's reason texts;
 *   delete of a missing doc is 404 result "not_found" and not an error; its
 *   version (and every delete's) is kept as a tombstone for gc_deletes;
 *   400 for a document the engine refuses: its JSON as Jackson reads it,
 *   field names (metadata fields, empty names and dotted parts), values
 *   against the index's mapping, with the texts of --flavor os2
 *   (OpenSearch 2, the default) or es8 (Elasticsearch 8);
 *   tests/tools/ENGINE-RULES.md has the rules and their sources.  Also the
 *   poison field and the index's mapping limits (index.mapping.depth.limit,
 *   index.mapping.total_fields.limit: os2 counts the document's objects and
 *   arrays as it parses them and checks the mapping its new fields make,
 *   es8 checks each new field as it comes).  The source is parsed before
 *   versions are compared, as in the shard; a keyword value over Lucene's
 *   32766-byte term limit fails after them.
 * - The mapping: PUT /<index> with {"mappings": ...} sets explicit fields
 *   (object, text, keyword, long, integer, short, byte, double, float,
 *   boolean, date; multi-fields; ignore_malformed, ignore_above, enabled),
 *   "dynamic" (true, false, strict; per object, inherited),
 *   "dynamic_templates", date_detection and numeric_detection, and refuses
 *   bad bodies as the engines do ("Failed to parse mapping ...").  A valid
 *   mapping the double does not model (other types, copy_to, date formats,
 *   runtime fields, ...) is refused with search_double_unsupported_exception.
 *   Fields new in accepted documents join it (dynamic templates first, then
 *   the engine's defaults); GET /<index>/_mapping shows it; it goes with the
 *   index.  Of the settings (at creation, PUT /<index>/_settings, shown by
 *   GET /<index>/_settings) the mapping limits are read; aliases are not
 *   modelled.
 * - A body needs Content-Type application/json or application/x-ndjson
 *   (charset and vnd.elasticsearch+ variants too), else 406 as in ES.
 * - filter_path (comma-separated, '*' and '**'; no '-' exclusions) applies
 *   to bulk and single-document write replies; objects and array entries
 *   left empty disappear, as in ES.
 *
 * Other decisions:
 * - The body cap (--max-body, like http.max_content_length) is checked on the
 *   bytes received and again on the decompressed body: a self-managed node
 *   decompresses before it aggregates, a managed front end counts the wire.
 *   Passing both checks passes either.  The 413 uses the ES error shape.
 * - ApiKey auth accepts `Authorization: ApiKey <base64(id:key)>`; --api-key
 *   takes either that encoded form or the raw "id:key".
 * - SigV4: the signature is recomputed over exactly the signed headers with
 *   the received X-Amz-Date; the payload hash is over the body as received
 *   (compressed, de-chunked).  403 bodies use AWS's {"message": ...} texts.
 * - Documents are kept as raw source text, never re-encoded, so numbers of
 *   any size survive.  --discard (the benchmarks' sink) keeps no sources:
 *   each document is checked all the same, versions and tombstones are kept
 *   and applied as without it (the same code: 409s, external versions), and
 *   of the source only its SHA-256, so that GET /_double/digests can show
 *   the index's final state (id, version, digest or tombstone) in 32 bytes a
 *   document.
 * - Fault rules (POST /_double/faults, a rule or a list) are queued; each
 *   non-control request that passed auth takes one use of the first rule
 *   whose "match" (any|bulk|search|doc|count, default any) fits it.  A rule
 *   has "count" (default 1, -1 = forever) and one of: "status" (whole-request
 *   error in ES's shape, optional "body"), "item_status" for the bulk items
 *   chosen by "items" (all|odd|even|N first; zero-based odd positions)
 *   and/or "ids" (a list of _id: only items with one of them; with "items"
 *   both must hold), the other items being executed normally (item_status
 *   403 is a write block: cluster_block_exception "index [i] blocked by:
 *   [FORBIDDEN/8/index write (api)];"), "action" (reset: half the reply then
 *   RST; drop: close without reply), or just "delay_ms" (which also delays a
 *   status, item_status or reset reply).  A rule with "ids" is used up by
 *   the request that takes it whether or not that holds one of its ids:
 *   give it "match": "bulk" and a count.  {"down_ms": N} takes effect at
 *   once: every connection is closed and new ones are reset for N ms.
 */
#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Main                                                                     */

static void on_signal(uv_signal_t *s, int signum)
{
    if (srv.stopping)
        return;
    srv.stopping = true;
    log_info("searchd: signal %d, stopping", signum);
    uv_close((uv_handle_t *)&srv.listener, NULL);
    conns_close_all(NULL);
    uv_close((uv_handle_t *)&srv.sigterm, NULL);
    uv_close((uv_handle_t *)&srv.sigint, NULL);
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int rc = -errno;
        unlink(tmp);
        return rc;
    }
    return 0;
}

static void usage(FILE *f)
{
    fputs(
        "usage: searchd [options]\n"
        "  --listen HOST:PORT      address to bind (default 127.0.0.1:0)\n"
        "  --port-file FILE        write the bound port there once listening (atomically)\n"
        "  --discard               keep versions, tombstones and each source's SHA-256,\n"
        "                          not the sources (benchmark sink)\n"
        "  --max-body BYTES        body cap, checked on the wire and decompressed (100m)\n"
        "  --gc-deletes SECONDS    how long delete tombstones keep their version (60)\n"
        "  --poison-field NAME     documents with this top-level field fail with 400 (an\n"
        "                          immense-term error: permanent)\n"
        "  --depth-limit N         index.mapping.depth.limit of indexes created without\n"
        "                          it; 0 = no depth checks (20)\n"
        "  --flavor F              whose rules, texts and APIs: os2 (opensearch2, the default),\n"
        "                          es8, aoss-search, aoss-timeseries, elastic-serverless\n"
        "                          (also spelt --flavour)\n"
        "  --engine-version X.Y.Z  the version GET / reports (es8: 8.15.0; from 8.18 bulk and\n"
        "                          document writes take include_source_on_error)\n"
        "  --no-external-versions  drop version and version_type from writes (a fault)\n"
        "  --auth MODE             none|basic|apikey|sigv4 (none)\n"
        "  --user U --password P   basic auth credentials\n"
        "  --api-key K             ApiKey: base64(id:key) as sent, or the raw id:key\n"
        "  --access-key AKID --secret-key S [--session-token T]\n"
        "  --region R --service es|aoss   sigv4 (service default es)\n"
        "  --verbose               debug logging\n"
        "PUT /<index> takes {\"mappings\": ...} (explicit fields, dynamic, dynamic_templates);\n"
          "GET /<index>/_mapping shows them and the fields learned from accepted documents.\n"
        "Index settings read: index.mapping.depth.limit, index.mapping.total_fields.limit\n"
        "(and, es8, .ignore_dynamic_beyond_limit); GET/PUT /<index>/_settings.\n"
        "Aliases (PUT /<index> \"aliases\", POST /_aliases, GET /_alias/<name>), data streams\n"
        "(PUT /_data_stream/<name>) and GET /_resolve/index/<expr>.\n"
        "Control API (no auth): POST /_double/faults, POST /_double/config,\n"
        "POST /_double/reset, GET /_double/dump, GET /_double/stats, GET /_double/requests,\n"
        "GET /_double/digests[?index=NAME] (one line a document: id, version, SHA-256 of\n"
        "its source or \"deleted\").\n",
        f);
}

static void settings_free(struct settings *s)
{
    char **strs[] = { &s->user, &s->password, &s->api_key, &s->access_key, &s->secret_key,
                      &s->session_token, &s->region, &s->service, &s->poison_field,
                      &s->engine_version };

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        set_str(strs[i], NULL);
}

int main(int argc, char **argv)
{
    enum { O_LISTEN = 256, O_PORTFILE, O_DISCARD, O_MAXBODY, O_GC, O_POISON, O_DEPTH, O_AUTH,
           O_USER, O_PASSWORD, O_APIKEY, O_AK, O_SK, O_TOKEN, O_REGION, O_SERVICE, O_VERBOSE,
           O_HELP, O_FLAVOR, O_ENGINE_VERSION, O_NO_EXTERNAL };
    static const struct option opts[] = {
        { "listen", required_argument, NULL, O_LISTEN },
        { "port-file", required_argument, NULL, O_PORTFILE },
        { "discard", no_argument, NULL, O_DISCARD },
        { "max-body", required_argument, NULL, O_MAXBODY },
        { "gc-deletes", required_argument, NULL, O_GC },
        { "poison-field", required_argument, NULL, O_POISON },
        { "depth-limit", required_argument, NULL, O_DEPTH },
        { "flavor", required_argument, NULL, O_FLAVOR },
        { "flavour", required_argument, NULL, O_FLAVOR },
        { "engine-version", required_argument, NULL, O_ENGINE_VERSION },
        { "no-external-versions", no_argument, NULL, O_NO_EXTERNAL },
        { "auth", required_argument, NULL, O_AUTH },
        { "user", required_argument, NULL, O_USER },
        { "password", required_argument, NULL, O_PASSWORD },
        { "api-key", required_argument, NULL, O_APIKEY },
        { "access-key", required_argument, NULL, O_AK },
        { "secret-key", required_argument, NULL, O_SK },
        { "session-token", required_argument, NULL, O_TOKEN },
        { "region", required_argument, NULL, O_REGION },
        { "service", required_argument, NULL, O_SERVICE },
        { "verbose", no_argument, NULL, O_VERBOSE },
        { "help", no_argument, NULL, O_HELP },
        { NULL, 0, NULL, 0 },
    };
    struct settings *s = &srv.set;
    const char *listen_on = "127.0.0.1:0", *port_file = NULL;
    char host[256];
    int opt, port, rc;
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);

    s->max_body = 100u << 20;
    s->gc_deletes_ms = 60000;
    s->depth_limit = 20;
    log_setup(LOG_LVL_INFO, LOG_FMT_TEXT);
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_LISTEN: listen_on = optarg; break;
        case O_PORTFILE: port_file = optarg; break;
        case O_DISCARD: s->discard = true; break;
        case O_MAXBODY:
            if (parse_size(optarg, &s->max_body) < 0 || s->max_body == 0) {
                fprintf(stderr, "searchd: --max-body: bad size \"%s\"\n", optarg);
                return 64;
            }
            s->max_body_set = true;
            break;
        case O_GC:
            if (parse_duration_ms(optarg, &s->gc_deletes_ms) < 0) {
                fprintf(stderr, "searchd: --gc-deletes: bad duration \"%s\"\n", optarg);
                return 64;
            }
            break;
        case O_POISON: set_str(&s->poison_field, optarg); break;
        case O_DEPTH: s->depth_limit = atoi(optarg); break;
        case O_FLAVOR:
            if (parse_flavor(optarg, &s->flavor, &s->offering) < 0) {
                fprintf(stderr, "searchd: --flavor: os2, opensearch2, es8, aoss-search, "
                                "aoss-timeseries or elastic-serverless\n");
                return 64;
            }
            break;
        case O_ENGINE_VERSION: set_str(&s->engine_version, optarg); break;
        case O_NO_EXTERNAL: s->no_external_versions = true; break;
        case O_AUTH:
            if (parse_auth(optarg, &s->auth) < 0) {
                fprintf(stderr, "searchd: --auth: none, basic, apikey or sigv4\n");
                return 64;
            }
            break;
        case O_USER: set_str(&s->user, optarg); break;
        case O_PASSWORD: set_str(&s->password, optarg); break;
        case O_APIKEY: set_str(&s->api_key, optarg); break;
        case O_AK: set_str(&s->access_key, optarg); break;
        case O_SK: set_str(&s->secret_key, optarg); break;
        case O_TOKEN: set_str(&s->session_token, optarg); break;
        case O_REGION: set_str(&s->region, optarg); break;
        case O_SERVICE: set_str(&s->service, optarg); break;
        case O_VERBOSE: log_setup(LOG_LVL_DEBUG, LOG_FMT_TEXT); break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 64;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 64;
    }
    if (!s->service)
        set_str(&s->service, "es");
    if (!s->max_body_set)
        s->max_body = flavour_max_body();
    if (s->auth == AUTH_SIGV4 && (!s->access_key || !s->secret_key || !s->region)) {
        fprintf(stderr, "searchd: --auth sigv4 needs --access-key, --secret-key and --region\n");
        return 64;
    }
    const char *colon = strrchr(listen_on, ':');
    if (!colon || (size_t)(colon - listen_on) >= sizeof(host)) {
        fprintf(stderr, "searchd: --listen: HOST:PORT\n");
        return 64;
    }
    memcpy(host, listen_on, (size_t)(colon - listen_on));
    host[colon - listen_on] = '\0';
    port = atoi(colon + 1);

    signal(SIGPIPE, SIG_IGN);
    /* bodies and replies of a few MiB come and go all the time: keep them
     * on the heap instead of fresh (page-faulting) mmaps */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    srv.loop = uv_default_loop();
    uv_tcp_init(srv.loop, &srv.listener);
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    const struct sockaddr *sa;
    if (uv_ip4_addr(host, port, &a4) == 0)
        sa = (const struct sockaddr *)&a4;
    else if (uv_ip6_addr(host, port, &a6) == 0)
        sa = (const struct sockaddr *)&a6;
    else {
        fprintf(stderr, "searchd: --listen: bad address \"%s\"\n", host);
        return 64;
    }
    if ((rc = uv_tcp_bind(&srv.listener, sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&srv.listener, 1024, on_connection)) < 0) {
        fprintf(stderr, "searchd: cannot listen on %s: %s\n", listen_on, uv_strerror(rc));
        return 69;
    }
    uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&ss, &sslen);
    port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
    uv_signal_init(srv.loop, &srv.sigterm);
    uv_signal_init(srv.loop, &srv.sigint);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    if (port_file && (rc = write_port_file(port_file, port)) < 0) {
        fprintf(stderr, "searchd: cannot write %s: %s\n", port_file, strerror(-rc));
        return 73;
    }
    log_info("searchd: listening on %s:%d (auth %s%s)", host, port,
             s->auth == AUTH_NONE ? "none" : s->auth == AUTH_BASIC ? "basic"
             : s->auth == AUTH_APIKEY ? "apikey" : "sigv4", s->discard ? ", discard" : "");
    uv_run(srv.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(srv.loop);
    map_clear(&srv.indices, index_free);
    map_clear(&srv.aliases, alias_free);
    map_clear(&srv.streams, stream_free);
    reqlog_clear();
    map_clear(&scr.pending, field_free);
    faults_clear();
    settings_free(s);
    EVP_MD_free(srv.sha256);
    log_flush();
    return rc == 0 ? 0 : 70;
}
