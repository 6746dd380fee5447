/* lease_read — the lease table reached once, on a private loop, by the
 * commands that do not run the coordinator: `ddb2es status` (every item),
 * `ddb2es status --write-checkpoints` (the table back into a checkpoint
 * file). */
#include "daemon/lease_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define READ_TIMEOUT_MS 30000L

struct scan_job {
    const char *table;
    bool done;
    int status;
    json_t *items;
    char *why;
    size_t len;
};

static void on_scanned(int status, const json_t *items, const char *why, void *arg)
{
    struct scan_job *j = arg;

    j->done = true;
    j->status = status;
    if (status == 0)
        j->items = json_deep_copy(items);
    else
        snprintf(j->why, j->len, "%s", why && *why ? why : strerror(-status));
}

static int scan_start(uv_loop_t *loop, struct aws *aws, void *arg)
{
    struct scan_job *j = arg;

    return leasetab_scan(aws, j->table, on_scanned, j) ? 0 : -ENOMEM;
}

static bool scan_done(void *arg)
{
    return ((struct scan_job *)arg)->done;
}

int lease_table_scan(const struct lease_conn *conn, const char *table, json_t **items, char *why,
                     size_t len)
{
    struct scan_job j = { .table = table, .why = why, .len = len };
    int rc;

    *items = NULL;
    if (len)
        why[0] = '\0';
    rc = lease_sync_run(conn, READ_TIMEOUT_MS, scan_start, scan_done, &j);
    if (rc == 0)
        rc = j.status;
    if (rc == 0 && !j.items)
        rc = -ENOMEM;
    if (rc == -ETIMEDOUT)
        snprintf(why, len, "no answer in %ld s", READ_TIMEOUT_MS / 1000);
    else if (rc == -ENOENT)
        snprintf(why, len, "the table does not exist");
    if (rc < 0) {
        json_decref(j.items);
        return rc;
    }
    *items = j.items;
    return 0;
}
