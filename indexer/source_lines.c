/* source_lines — the files of `replay --file` read in turn through zlib
 * (plain or gzip); see source.h. */
#include "indexer/source.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/jsonx.h"
#include "base/log.h"

#define READ_CHUNK (1u << 20) /* bytes read from a file at a time */

int source_open_next(struct source_files *f)
{
    if (f->gz) {
        struct stat st;

        f->bytes_before += stat(f->paths[f->cur], &st) == 0 ? st.st_size : 0;
        gzclose(f->gz);
        f->gz = NULL;
        f->cur++;
    }
    if (f->cur >= f->npaths)
        return 0;
    f->gz = gzopen(f->paths[f->cur], "rb");
    if (!f->gz) {
        snprintf(f->why, sizeof(f->why), "cannot open %s: %s", f->paths[f->cur],
                 strerror(errno ? errno : EIO));
        return -EIO;
    }
    gzbuffer(f->gz, 256 * 1024);
    buf_reset(&f->in);
    f->off = 0;
    f->lineno = 0;
    f->file_eof = false;
    log_debug("reading %s", f->paths[f->cur]);
    return 1;
}

int source_fill(struct source_files *f)
{
    int n;

    if (f->off) {
        memmove(f->in.ptr, f->in.ptr + f->off, f->in.len - f->off);
        f->in.len -= f->off;
        f->off = 0;
    }
    if (f->in.len >= SOURCE_LINE_MAX) {
        snprintf(f->why, sizeof(f->why), "line longer than %u bytes", SOURCE_LINE_MAX);
        return -EBADMSG;
    }
    if (buf_reserve(&f->in, READ_CHUNK) < 0)
        return -ENOMEM;
    n = gzread(f->gz, f->in.ptr + f->in.len, READ_CHUNK);
    if (n < 0) {
        int zerr;
        const char *msg = gzerror(f->gz, &zerr);

        if (zerr == Z_DATA_ERROR || zerr == Z_BUF_ERROR) {
            snprintf(f->why, sizeof(f->why), "corrupt gzip data: %s", msg);
            return -EBADMSG;
        }
        snprintf(f->why, sizeof(f->why), "%s: read failed: %s", f->paths[f->cur], msg);
        return -EIO;
    }
    if (n == 0)
        f->file_eof = true;
    f->in.len += (size_t)n;
    f->in.ptr[f->in.len] = '\0';
    return 0;
}

int64_t source_done_bytes(const struct source_files *f)
{
    return f->bytes_before + (f->gz ? (int64_t)gzoffset(f->gz) : 0);
}

int source_next_line(struct source_files *f, char **line, size_t *len)
{
    for (;;) {
        char *p, *nl;
        size_t n;
        int rc;

        if (!f->gz || (f->file_eof && f->off >= f->in.len)) {
            rc = source_open_next(f);
            if (rc <= 0)
                return rc;
        }
        p = f->in.ptr ? f->in.ptr + f->off : NULL;
        nl = p ? memchr(p, '\n', f->in.len - f->off) : NULL;
        if (!nl && !f->file_eof) {
            if ((rc = source_fill(f)) < 0)
                return rc;
            continue;
        }
        n = nl ? (size_t)(nl - p) : f->in.len - f->off;
        f->off += n + (nl ? 1 : 0);
        f->lineno++;
        /* blanks around the line (and a CR before its LF) are not part of it */
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        *line = p;
        *len = n;
        return 1;
    }
}

json_t *source_line_value(struct source_files *f, char *line, size_t len, bool lambda_ok,
                          unsigned long *at, int *err)
{
    json_error_t jerr;
    json_t *v = jsonx_loadb(line, len, 0, &jerr);
    int rc;

    *at = f->lineno;
    *err = 0;
    if (v)
        return v;
    if (f->lineno == 1 && lambda_ok && *line == '{') {
        f->off = (size_t)(line - f->in.ptr);
        while (!f->file_eof)
            if ((rc = source_fill(f)) < 0) {
                *at = f->lineno + 1;
                *err = rc;
                return NULL;
            }
        v = jsonx_loadb(f->in.ptr + f->off, f->in.len - f->off, 0, &jerr);
        f->off = f->in.len;
        if (v)
            return v;
        *at = (unsigned long)jerr.line;
        snprintf(f->why, sizeof(f->why), "%s", jerr.text);
    } else {
        snprintf(f->why, sizeof(f->why), "not JSON: %s", jerr.text);
    }
    *err = -EBADMSG;
    return NULL;
}

int source_exit_code(struct source_files *f, int rc)
{
    if (rc == -EBADMSG)
        return 65;
    if (rc != -ENOMEM)
        return 74;
    snprintf(f->why, sizeof(f->why), "out of memory");
    return 70;
}
