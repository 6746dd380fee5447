/* leaseproxy — counts the calls the workers make to the DynamoDB endpoint
 * (the lease table's, for bench/leases.sh), forwarding each to DynamoDB
 * Local as it came (tests/support/ddbproxy).
 *
 *   leaseproxy UPSTREAM PORT_FILE COUNT_FILE
 *
 * Writes its port to PORT_FILE, then the number of calls forwarded so far
 * to COUNT_FILE every 100 ms, until SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/ddbproxy.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    stop = 1;
}

static void write_file(const char *path, const char *text)
{
    char tmp[4200];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (!(f = fopen(tmp, "w")))
        return;
    fputs(text, f);
    fclose(f);
    rename(tmp, path);
}

int main(int argc, char **argv)
{
    struct ddbproxy *p;
    const char *url, *port;
    char text[64];

    if (argc != 4) {
        fprintf(stderr, "usage: leaseproxy UPSTREAM PORT_FILE COUNT_FILE\n");
        return 64;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    p = ddbproxy_start(argv[1]);
    url = ddbproxy_url(p);
    port = strrchr(url, ':');
    write_file(argv[2], port ? port + 1 : url);
    while (!stop) {
        snprintf(text, sizeof(text), "%u\n", ddbproxy_forwarded(p));
        write_file(argv[3], text);
        usleep(100000);
    }
    ddbproxy_stop(p);
    return 0;
}
