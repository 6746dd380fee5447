/* source_files — the file list of `replay --file` and the export's time;
 * see source.h. */
#include "indexer/source.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/jsonx.h"
#include "base/log.h"
#include "base/rfc3339.h"

int source_parse_time(const char *s, int64_t *out)
{
    char *end;
    long long v;
    time_t t;

    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0 && v > 0) {
        *out = v;
        return 0;
    }
    if (rfc3339_parse(s, &t) < 0)
        return -EINVAL;
    *out = (int64_t)t;
    return 0;
}

static int add_path(struct source_files *sf, const char *dir, const char *name)
{
    char **v = realloc(sf->paths, (sf->npaths + 1) * sizeof(*v));
    struct stat st;

    if (!v)
        return -ENOMEM;
    sf->paths = v;
    if (asprintf(&v[sf->npaths], "%s%s%s", dir ? dir : "", dir ? "/" : "", name) < 0)
        return -ENOMEM;
    if (stat(v[sf->npaths], &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(sf->why, sizeof(sf->why), "%s: %s", v[sf->npaths],
                 errno ? strerror(errno) : "not a regular file");
        free(v[sf->npaths]);
        return -ENOENT;
    }
    sf->total_bytes += st.st_size;
    sf->npaths++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool data_name(const char *n)
{
    size_t l = strlen(n);

    if (n[0] == '.' || strncmp(n, "manifest-", 9) == 0 || strcmp(n, "_started") == 0)
        return false;
    return (l > 5 && strcmp(n + l - 5, ".json") == 0) ||
           (l > 8 && strcmp(n + l - 8, ".json.gz") == 0) ||
           (l > 7 && strcmp(n + l - 7, ".ndjson") == 0) || (l > 3 && strcmp(n + l - 3, ".gz") == 0);
}

/* Every data file of a directory, sorted. */
static int add_dir(struct source_files *sf, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    int rc = 0;

    if (!d) {
        snprintf(sf->why, sizeof(sf->why), "%s: %s", dir, strerror(errno));
        return -errno;
    }
    while (rc == 0 && (e = readdir(d))) {
        char **v;

        if (!data_name(e->d_name))
            continue;
        v = realloc(names, (n + 1) * sizeof(*v));
        if (!v || !(v[n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            names = v ? v : names;
            break;
        }
        names = v;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = add_path(sf, dir, names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* manifest-files.json: one JSON object a line naming a data file
 * (dataFileS3Key, whose last two parts are data/<name>). */
static int add_manifest_files(struct source_files *sf, const char *dir, const char *manifest)
{
    FILE *f = fopen(manifest, "r");
    char *line = NULL, *sub;
    size_t cap = 0;
    ssize_t n;
    unsigned long no = 0;
    int rc = 0;

    if (!f)
        return -errno;
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        json_t *j = jsonx_loadb(line, (size_t)n, 0, NULL);
        const char *key = json_string_value(json_object_get(j, "dataFileS3Key"));
        const char *base = key ? strrchr(key, '/') : NULL;

        no++;
        if (!key) {
            if (line[strspn(line, " \t\r\n")])
                snprintf(sf->why, sizeof(sf->why), "%s:%lu: no dataFileS3Key", manifest, no),
                    rc = -EBADMSG;
            json_decref(j);
            continue;
        }
        base = base ? base + 1 : key;
        if (asprintf(&sub, "%s/data", dir) < 0) {
            rc = -ENOMEM;
        } else {
            rc = add_path(sf, sub, base);
            free(sub);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    return rc;
}

static int export_time_from(struct source_files *sf, const char *summary)
{
    json_error_t jerr;
    json_t *j = jsonx_load_file(summary, 0, &jerr);
    const char *t = json_string_value(json_object_get(j, "exportTime"));
    const char *fmt = json_string_value(json_object_get(j, "outputFormat"));
    int rc = 0;

    if (!j) {
        snprintf(sf->why, sizeof(sf->why), "%s:%d: %s", summary, jerr.line, jerr.text);
        return -EBADMSG;
    }
    if (fmt && strcmp(fmt, "DYNAMODB_JSON") != 0) {
        snprintf(sf->why, sizeof(sf->why), "%s: outputFormat %s: only DYNAMODB_JSON exports can "
                 "be read", summary, fmt);
        rc = -EBADMSG;
    } else if (!t || source_parse_time(t, &sf->export_time) < 0) {
        snprintf(sf->why, sizeof(sf->why), "%s: no valid exportTime", summary);
        rc = -EBADMSG;
    } else {
        log_info("export of %s, as of %s", summary, t);
    }
    json_decref(j);
    return rc;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* --file PATH: a file, or a directory (an export's: manifest-files.json and
 * data/, or any directory of data files). */
int source_files_resolve(struct source_files *sf, const char *path, bool export,
                         int64_t read_time)
{
    struct stat st;
    char *m = NULL, *summary = NULL;
    int rc;

    if (stat(path, &st) < 0) {
        snprintf(sf->why, sizeof(sf->why), "%s: %s", path, strerror(errno));
        return -ENOENT;
    }
    if (S_ISDIR(st.st_mode)) {
        if (asprintf(&m, "%s/manifest-files.json", path) < 0 ||
            asprintf(&summary, "%s/manifest-summary.json", path) < 0)
            return -ENOMEM;
        if (exists(m)) {
            rc = add_manifest_files(sf, path, m);
        } else {
            free(m);
            m = NULL;
            if (asprintf(&m, "%s/data", path) < 0)
                return -ENOMEM;
            rc = add_dir(sf, exists(m) ? m : path);
        }
    } else {
        /* A single data file of an export: its manifest is one level up. */
        char *dup = strdup(path), *dir = dup ? dirname(dup) : NULL;

        rc = add_path(sf, NULL, path);
        if (rc == 0 && dir && (asprintf(&summary, "%s/manifest-summary.json", dir) < 0 ||
                               (!exists(summary) && (free(summary), summary = NULL,
                                                     asprintf(&summary, "%s/../manifest-summary.json",
                                                              dir) < 0))))
            rc = -ENOMEM;
        free(dup);
    }
    if (rc == 0 && sf->npaths == 0) {
        snprintf(sf->why, sizeof(sf->why), "%s: no data files", path);
        rc = -ENOENT;
    }
    if (rc == 0 && export) {
        if (summary && exists(summary))
            rc = export_time_from(sf, summary);
        else if (read_time > 0)
            sf->export_time = read_time;
        else {
            snprintf(sf->why, sizeof(sf->why), "%s: no manifest-summary.json with the export's "
                     "time: give it with --read-time (the export's exportTime)", path);
            rc = -EINVAL;
        }
    }
    free(m);
    free(summary);
    return rc;
}

void source_files_init(struct source_files *sf)
{
    memset(sf, 0, sizeof(*sf));
    buf_init(&sf->in, BUF_NOMAX);
}

void source_files_close(struct source_files *sf)
{
    for (size_t i = 0; i < sf->npaths; i++)
        free(sf->paths[i]);
    free(sf->paths);
    if (sf->gz)
        gzclose(sf->gz);
    buf_close(&sf->in);
}
