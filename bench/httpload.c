/* httpload — the ceiling of a benchmark server: POSTs one body again and
 * again on C keep-alive connections for S seconds, and prints how many
 * requests were answered per second.
 *
 *   httpload URL BODY_FILE CONNS SECONDS [HEADER...]
 *
 * Prints: requests N seconds S requests_per_s R bytes_sent_per_s B status200 K
 * Exit 0 when every answer was a 2xx.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
    (void)p;
    *(size_t *)arg += sz * n;
    return sz * n;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct curl_slist *hdrs = NULL;
    CURLM *m;
    CURL **e;
    FILE *fp;
    char *body;
    long blen;
    int conns, running = 0, active = 0;
    double secs, t0, t;
    size_t done = 0, ok = 0, rx = 0;

    if (argc < 5) {
        fprintf(stderr, "usage: httpload URL BODY_FILE CONNS SECONDS [HEADER...]\n");
        return 64;
    }
    conns = atoi(argv[3]);
    secs = atof(argv[4]);
    fp = fopen(argv[2], "rb");
    if (!fp || fseek(fp, 0, SEEK_END) != 0 || (blen = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET))
        return 66;
    body = malloc((size_t)blen + 1);
    if (!body || fread(body, 1, (size_t)blen, fp) != (size_t)blen)
        return 66;
    fclose(fp);
    for (int i = 5; i < argc; i++)
        hdrs = curl_slist_append(hdrs, argv[i]);
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_global_init(CURL_GLOBAL_ALL);
    m = curl_multi_init();
    e = calloc((size_t)conns, sizeof(*e));
    for (int i = 0; i < conns; i++) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, argv[1]);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &rx);
        curl_multi_add_handle(m, e[i]);
        active++;
    }
    t0 = now_s();
    for (;;) {
        CURLMsg *msg;
        int left;

        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left))) {
            long status = 0;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            done++;
            ok += status >= 200 && status < 300;
            curl_multi_remove_handle(m, msg->easy_handle);
            active--;
            if (now_s() - t0 < secs && curl_multi_add_handle(m, msg->easy_handle) == CURLM_OK)
                active++;
        }
        if (!active)
            break;
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    t = now_s() - t0;
    printf("requests %zu seconds %.2f requests_per_s %.1f bytes_sent_per_s %.0f "
           "bytes_received_per_s %.0f status2xx %zu\n",
           done, t, (double)done / t, (double)done * (double)blen / t, (double)rx / t, ok);
    for (int i = 0; i < conns; i++)
        curl_easy_cleanup(e[i]);
    free(e);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    free(body);
    return ok == done ? 0 : 1;
}
