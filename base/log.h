/* log — leveled logging to stderr, as text (with a <N> syslog prefix that
 * journald understands) or as one JSON object a line.
 *
 * Never pass a secret (keys, tokens, passwords, signatures, Authorization
 * headers) to these functions, at any level.  Repeats of the same message
 * within a few seconds are folded into one line with a count.
 */
#ifndef DDB2ES_LOG_H
#define DDB2ES_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_format { LOG_FMT_TEXT, LOG_FMT_JSON };

/* Optional fields attached to a line; NULL members are left out. */
struct log_ctx {
    const char *table;
    const char *shard;
};

extern enum log_level log_level_cur;

void log_setup(enum log_level level, enum log_format fmt);
int log_level_parse(const char *s, enum log_level *out);   /* 0 or -EINVAL */
int log_format_parse(const char *s, enum log_format *out); /* 0 or -EINVAL */
void log_emit(enum log_level level, const struct log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Flush pending "repeated N times" summaries (called at exit). */
void log_flush(void);
/* Flush a pending summary whose window has passed (call it now and then, so
 * a burst that stopped is summed up without waiting for the next line). */
void log_flush_expired(void);

#define LOG_AT(lvl, ctx, ...)                                                                      \
    do {                                                                                           \
        if ((lvl) <= log_level_cur)                                                                \
            log_emit((lvl), (ctx), __VA_ARGS__);                                                   \
    } while (0)

#define log_error(...) LOG_AT(LOG_LVL_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LVL_WARN, NULL, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LVL_INFO, NULL, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LVL_DEBUG, NULL, __VA_ARGS__)
#define logc_error(ctx, ...) LOG_AT(LOG_LVL_ERROR, (ctx), __VA_ARGS__)
#define logc_warn(ctx, ...) LOG_AT(LOG_LVL_WARN, (ctx), __VA_ARGS__)
#define logc_info(ctx, ...) LOG_AT(LOG_LVL_INFO, (ctx), __VA_ARGS__)
#define logc_debug(ctx, ...) LOG_AT(LOG_LVL_DEBUG, (ctx), __VA_ARGS__)

#endif
