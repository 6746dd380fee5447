/* config secrets — reading the password, API key and HMAC key files. */
#include "config/config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/secret.h"

#define SECRET_MAX (64 * 1024)

/* ---- secret files ---- */

int config_read_secret(const char *path, char **out, char *err, size_t errlen)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    char *full = NULL, *data = NULL, where[PATH_MAX + 100] = "", cwd[PATH_MAX];
    size_t len = 0;
    int fd = -1, rc = 0;
    struct stat st;

    *out = NULL;
    if (!path || !*path) {
        snprintf(err, errlen, "no path given");
        return -EINVAL;
    }
    /* Say where a relative path was looked for: the reader of the message
     * does not know the service's directory or its credentials. */
    if (!strchr(path, '/') && dir && *dir) {
        if (asprintf(&full, "%s/%s", dir, path) < 0) {
            full = NULL;
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        snprintf(where, sizeof(where), " ($CREDENTIALS_DIRECTORY/%s)", path);
        path = full;
    } else if (path[0] != '/') {
        snprintf(where, sizeof(where), " (relative to the working directory %s%s)",
                 getcwd(cwd, sizeof(cwd)) ? cwd : "?",
                 strchr(path, '/') ? "" : "; $CREDENTIALS_DIRECTORY is not set");
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
    } else if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
    } else if (!(data = malloc(SECRET_MAX + 1))) {
        rc = -ENOMEM;
    } else {
        for (;;) {
            ssize_t n = read(fd, data + len, SECRET_MAX + 1 - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = -errno;
                break;
            }
            if (n == 0)
                break;
            len += (size_t)n;
            if (len > SECRET_MAX) {
                rc = -EFBIG;
                break;
            }
        }
    }
    if (rc == -EFBIG) {
        snprintf(err, errlen, "\"%s\"%s is larger than 64 KiB", path, where);
        goto out;
    }
    if (rc) {
        snprintf(err, errlen, "cannot read \"%s\"%s: %s", path, where, strerror(-rc));
        goto out;
    }
    if (len && data[len - 1] == '\n')
        len--;
    if (len && data[len - 1] == '\r')
        len--;
    data[len] = '\0';
    if (len == 0 || memchr(data, '\0', len)) {
        rc = -EINVAL;
        snprintf(err, errlen, "\"%s\"%s %s", path, where, len ? "holds a NUL byte" : "is empty");
        goto out;
    }
    *out = data;
    data = NULL;
out:
    if (data) {
        explicit_bzero(data, SECRET_MAX + 1);
        free(data);
    }
    if (fd >= 0)
        close(fd);
    free(full);
    return rc;
}

/* Reads the secret named by key into *out (replacing what was there). */
static int read_secret_of(struct config *cfg, const struct config_table *t, const char *section,
                          const char *key, const char *path, char **out, char *err,
                          size_t errlen)
{
    char why[PATH_MAX + 400];
    int rc;

    secret_free(out);
    *out = NULL;
    rc = config_read_secret(path, out, why, sizeof(why));
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return CONFIG_EX_OSERR;
    }
    return rc < 0 ? config_refuse(cfg, t, section, key, err, errlen, "%s", why) : 0;
}

int config_read_secrets(struct config *cfg, const char *only_table, char *err, size_t errlen)
{
    int rc = 0;

    if (cfg->sink.auth == CONFIG_AUTH_BASIC)
        rc = read_secret_of(cfg, NULL, "sink", "password_file", cfg->sink.password_file,
                            &cfg->sink.password, err, errlen);
    if (rc == 0 && cfg->sink.auth == CONFIG_AUTH_APIKEY)
        rc = read_secret_of(cfg, NULL, "sink", "api_key_file", cfg->sink.api_key_file,
                            &cfg->sink.api_key, err, errlen);
    for (size_t i = 0; rc == 0 && i < cfg->ntables; i++) {
        struct config_table *t = &cfg->tables[i];

        if (t->hmac.count && (!only_table || strcmp(only_table, t->name) == 0))
            rc = read_secret_of(cfg, t, NULL, "hmac_key_file", t->hmac_key_file, &t->hmac_key,
                                err, errlen);
    }
    return rc;
}
