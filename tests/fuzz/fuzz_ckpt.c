/* Fuzz target: the checkpoint loader (ckpt_load).
 *
 * The input is checkpoints.json.  A file either loads or fails with a
 * message naming it (the daemon then exits 65); a loaded store serialises
 * again and that file loads to the same number of shards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ckpt.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_tmpdir();
    char path[300], err[1024];
    struct ckpt *ck = ckpt_new(dir), *again;
    int rc;

    if (!ck)
        return 0;
    snprintf(path, sizeof(path), "%s/" CKPT_FILE, dir);
    fuzz_write_file(path, data, size);
    rc = ckpt_load(ck, err, sizeof(err));
    if (rc < 0 && rc != -ENOMEM && (rc != -EBADMSG || strncmp(err, path, strlen(path)) != 0))
        abort();
    if (rc == 0 && ckpt_save_sync(ck) == 0) {
        again = ckpt_new(dir);
        if (!again || ckpt_load(again, err, sizeof(err)) != 0 ||
            ckpt_count(again) != ckpt_count(ck)) {
            fprintf(stderr, "a saved store does not load again: %s\n", err);
            abort();
        }
        ckpt_free(again);
    }
    ckpt_free(ck);
    return 0;
}
