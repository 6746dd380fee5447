/* floor — the resident memory of a process that only loads what ddb2es
 * links (libcurl with its dependencies, OpenSSL, libuv, jansson, zlib) and
 * initialises it the way ddb2es must: curl_global_init, one HMAC-SHA256 (as
 * SigV4 signs), one HTTP request through curl.  No record, no queue: the
 * part of ddb2es's peak RSS that is not its own data.  Most of it is shared
 * library pages mapped read-only (RssFile), counted in every process's RSS.
 *
 *   floor [URL]        (default http://127.0.0.1:9/, refused at once)
 *
 * Prints one line per step:  STEP VmRSS_kB RssAnon_kB RssFile_kB
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <uv.h>

static void show(const char *step)
{
    char line[256];
    long rss = 0, anon = 0, file = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f) {
        perror("/proc/self/status");
        exit(1);
    }
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "VmRSS: %ld", &rss);
        sscanf(line, "RssAnon: %ld", &anon);
        sscanf(line, "RssFile: %ld", &file);
    }
    fclose(f);
    printf("%-16s %6ld %6ld %6ld\n", step, rss, anon, file);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "http://127.0.0.1:9/";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;
    uv_loop_t loop;
    json_t *j;
    CURL *e;

    printf("%-16s %6s %6s %6s\n", "step", "VmRSS", "anon", "file");
    show("loaded");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    show("curl_global_init");
    HMAC(EVP_sha256(), "key", 3, (const unsigned char *)"data", 4, md, &mdlen);
    show("hmac-sha256");
    uv_loop_init(&loop);
    j = json_pack("{s:s}", "a", "b");
    json_decref(j);
    show("libuv+jansson");
    e = curl_easy_init();
    if (!e)
        return 1;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_perform(e); /* refused or answered: either way curl's transfer code has run */
    curl_easy_cleanup(e);
    show("one request");
    uv_loop_close(&loop);
    curl_global_cleanup();
    return 0;
}
