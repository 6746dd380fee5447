#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum log_level log_level_cur = LOG_LVL_INFO;
static enum log_format log_fmt = LOG_FMT_TEXT;

static const char *const level_name[] = { "error", "warn", "info", "debug" };
static const int level_syslog[] = { 3, 4, 6, 7 };

/* Repeat folding: the last line's text and how often it came again. */
#define REPEAT_WINDOW_S 10
static struct {
    char text[512];
    enum log_level level;
    struct timespec first;
    unsigned long repeats;
} last;

void log_setup(enum log_level level, enum log_format fmt)
{
    log_level_cur = level;
    log_fmt = fmt;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_name) / sizeof(level_name[0]); i++)
        if (strcmp(s, level_name[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = LOG_FMT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = LOG_FMT_JSON;
    else
        return -EINVAL;
    return 0;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void write_line(enum log_level level, const struct log_ctx *ctx, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char when[40];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_fmt == LOG_FMT_JSON) {
        fprintf(stderr, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"message\":", when,
                ts.tv_nsec / 1000000, level_name[level]);
        json_str(stderr, msg);
        if (ctx && ctx->table) {
            fputs(",\"table\":", stderr);
            json_str(stderr, ctx->table);
        }
        if (ctx && ctx->shard) {
            fputs(",\"shard\":", stderr);
            json_str(stderr, ctx->shard);
        }
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "<%d>%s.%03ldZ %s ", level_syslog[level], when, ts.tv_nsec / 1000000,
                level_name[level]);
        if (ctx && ctx->table)
            fprintf(stderr, "[%s%s%s] ", ctx->table, ctx->shard ? " " : "",
                    ctx->shard ? ctx->shard : "");
        fprintf(stderr, "%s\n", msg);
    }
    fflush(stderr);
}

static void flush_repeats(void)
{
    char msg[600];

    if (last.repeats == 0)
        return;
    snprintf(msg, sizeof(msg), "last message repeated %lu more times: %.500s", last.repeats,
             strchr(strchr(last.text, '|') + 1, '|') + 1);
    write_line(last.level, NULL, msg);
    last.repeats = 0;
}

void log_flush(void)
{
    flush_repeats();
}

void log_flush_expired(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (last.repeats && now.tv_sec - last.first.tv_sec >= REPEAT_WINDOW_S) {
        flush_repeats();
        last.text[0] = '\0'; /* the next one is written again, starting a new window */
    }
}

void log_emit(enum log_level level, const struct log_ctx *ctx, const char *fmt, ...)
{
    char msg[2048];
    char key[sizeof(last.text)];
    struct timespec now;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    {
        int n = snprintf(key, sizeof(key), "%s|%s|", ctx && ctx->table ? ctx->table : "",
                         ctx && ctx->shard ? ctx->shard : "");
        size_t used = n < 0 ? 0 : (size_t)n < sizeof(key) ? (size_t)n : sizeof(key) - 1;
        size_t room = sizeof(key) - 1 - used, mlen = strlen(msg);

        memcpy(key + used, msg, mlen < room ? mlen : room);
        key[used + (mlen < room ? mlen : room)] = '\0';
    }

    clock_gettime(CLOCK_MONOTONIC, &now);
    /* Errors and warnings that repeat verbatim are folded within a window. */
    if (level <= LOG_LVL_WARN && strcmp(key, last.text) == 0 &&
        now.tv_sec - last.first.tv_sec < REPEAT_WINDOW_S) {
        last.repeats++;
        return;
    }
    flush_repeats();
    snprintf(last.text, sizeof(last.text), "%s", key);
    last.level = level;
    last.first = now;
    write_line(level, ctx, msg);
}
