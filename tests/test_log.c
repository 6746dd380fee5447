/* log: one JSON object a line with time, level, message and context
 * fields; the journald prefix in text; repeats folded with a count. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "tests/support/proc.h"

TestSuite(log, .timeout = 10);

/* Sends stderr to a file until captured() is called. */
static void capture(void)
{
    proc_stderr_capture();
}

static char *captured(void)
{
    log_flush();
    return proc_stderr_restore();
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(log, json_lines_carry_time_level_message_and_context)
{
    struct log_ctx c = { .table = "posts", .shard = "shardId-1" };
    char *out, *line, *save;
    size_t n = 0;

    capture();
    log_setup(LOG_LVL_DEBUG, LOG_FMT_JSON);
    logc_info(&c, "read %d records \"quoted\"\nsecond line\t\x01", 3);
    log_debug("no context");
    logc_error((&(struct log_ctx){ .table = "users" }), "only a table");
    out = captured();
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);

        cr_assert_not_null(j, "not JSON: %s (%s)", line, e.text);
        cr_expect(json_is_string(json_object_get(j, "time")));
        cr_expect(strlen(json_string_value(json_object_get(j, "time"))) == 24, "%s", line);
        if (n == 0) {
            cr_expect_str_eq(json_string_value(json_object_get(j, "level")), "info");
            cr_expect_str_eq(json_string_value(json_object_get(j, "message")),
                             "read 3 records \"quoted\"\nsecond line\t\x01");
            cr_expect_str_eq(json_string_value(json_object_get(j, "table")), "posts");
            cr_expect_str_eq(json_string_value(json_object_get(j, "shard")), "shardId-1");
        } else if (n == 1) {
            cr_expect_str_eq(json_string_value(json_object_get(j, "level")), "debug");
            cr_expect_null(json_object_get(j, "table"));
        } else {
            cr_expect_str_eq(json_string_value(json_object_get(j, "level")), "error");
            cr_expect_str_eq(json_string_value(json_object_get(j, "table")), "users");
            cr_expect_null(json_object_get(j, "shard"));
        }
        json_decref(j);
    }
    cr_expect_eq(n, 3, "one line per message");
    free(out);
}

Test(log, text_lines_have_the_journald_priority)
{
    char *out;

    capture();
    log_setup(LOG_LVL_INFO, LOG_FMT_TEXT);
    log_warn("careful");
    logc_error((&(struct log_ctx){ .table = "t", .shard = "s" }), "broken");
    log_debug("hidden at info");
    out = captured();
    cr_expect(strncmp(out, "<4>", 3) == 0, "%s", out);
    cr_expect(strstr(out, " warn careful\n") != NULL, "%s", out);
    cr_expect(strstr(out, "<3>") && strstr(out, "error [t s] broken\n"), "%s", out);
    cr_expect_null(strstr(out, "hidden"), "below the level: not written");
    free(out);
}

Test(log, repeated_errors_are_folded_with_a_count)
{
    struct log_ctx a = { .table = "posts" }, b = { .table = "users" };
    char *out;

    capture();
    log_setup(LOG_LVL_INFO, LOG_FMT_TEXT);
    for (int i = 0; i < 50; i++)
        logc_warn(&a, "GetRecords failed (throttled), retrying");
    logc_warn(&b, "GetRecords failed (throttled), retrying"); /* another table: its own line */
    for (int i = 0; i < 5; i++)
        log_error("bulk request failed");
    out = captured();
    cr_expect_eq(count(out, "[posts] GetRecords failed"), 1, "%s", out);
    cr_expect_eq(count(out, "last message repeated 49 more times: GetRecords failed"), 1, "%s",
                 out);
    cr_expect_eq(count(out, "[users] GetRecords failed"), 1, "%s", out);
    cr_expect_eq(count(out, "bulk request failed"), 2, "the line and its summary: %s", out);
    cr_expect_eq(count(out, "last message repeated 4 more times: bulk request failed"), 1, "%s",
                 out);
    free(out);
}

Test(log, info_lines_are_never_folded)
{
    char *out;

    capture();
    log_setup(LOG_LVL_INFO, LOG_FMT_TEXT);
    for (int i = 0; i < 3; i++)
        log_info("shard finished");
    out = captured();
    cr_expect_eq(count(out, "shard finished"), 3, "%s", out);
    free(out);
}
