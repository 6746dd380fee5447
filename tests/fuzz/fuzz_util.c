/* Helpers shared by the fuzz targets (linked into each of them). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");

    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static char dir[256];

/* The directory is flat and private to this process. */
static void remove_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    rmdir(dir);
}

const char *fuzz_tmpdir(void)
{
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");

        snprintf(dir, sizeof(dir), "%s/ddb2es-fuzz.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror(dir);
            abort();
        }
        atexit(remove_dir);
    }
    return dir;
}
