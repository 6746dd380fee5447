/* The finished-prefix tracker (invariant 1) and sequence-number order. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ack.h"
#include "daemon/seqnum.h"

TestSuite(seqnum, .timeout = 5);
TestSuite(ack, .timeout = 10);

/* ---- seqnum -------------------------------------------------------------- */

Test(seqnum, valid_accepts_21_to_40_digits_only)
{
    cr_assert(seqnum_valid("000000000000000000001"));                    /* 21 */
    cr_assert(seqnum_valid("1234567890123456789012345678901234567890")); /* 40 */
    cr_assert_not(seqnum_valid("00000000000000000001"));                 /* 20 */
    cr_assert_not(seqnum_valid("12345678901234567890123456789012345678901")); /* 41 */
    cr_assert_not(seqnum_valid(""));
    cr_assert_not(seqnum_valid(NULL));
    cr_assert_not(seqnum_valid("-00000000000000000001"));
    cr_assert_not(seqnum_valid("00000000000000000000 1"));
    cr_assert_not(seqnum_valid("0000000000000000000x1"));
    cr_assert_not(seqnum_valid("1e+30000000000000000000"));
}

Test(seqnum, compares_as_big_integers)
{
    /* Length decides before bytes: 9...9 (21 digits) < 1 followed by 21 zeros. */
    cr_assert_lt(seqnum_cmp("999999999999999999999", "1000000000000000000000"), 0);
    cr_assert_gt(seqnum_cmp("1000000000000000000000", "999999999999999999999"), 0);
    /* Leading zeros do not count. */
    cr_assert_eq(seqnum_cmp("000000000000000000042", "0000000000000000000000000042"), 0);
    cr_assert_lt(seqnum_cmp("000000000000000000041", "00000000000000000000000000042"), 0);
    cr_assert_gt(seqnum_cmp("0000000000000000000000000000000000000100", "000000000000000000099"),
                 0);
    /* 40 digits, beyond any int64 or double precision: differ in the last byte. */
    cr_assert_lt(seqnum_cmp("4999999999999999999999999999999999999998",
                            "4999999999999999999999999999999999999999"),
                 0);
    cr_assert_eq(seqnum_cmp("4999999999999999999999999999999999999999",
                            "4999999999999999999999999999999999999999"),
                 0);
    /* Bytes decide at equal length. */
    cr_assert_gt(seqnum_cmp("200000000000000000000", "199999999999999999999"), 0);
    /* All zeros are equal whatever the length. */
    cr_assert_eq(seqnum_cmp("000000000000000000000", "0000000000000000000000000"), 0);
}

/* ---- ack ----------------------------------------------------------------- */

/* Increasing sequence numbers whose length grows from 21 to 40 digits, so a
 * string comparison of raw text would get some pairs wrong. */
static void make_seq(char out[SEQNUM_MAX + 1], unsigned i)
{
    unsigned width = 21 + i / 316; /* 21..39 digits for i < 6000 */

    snprintf(out, SEQNUM_MAX + 1, "1%0*u", (int)width - 1, i);
}

Test(ack, in_order_completion_moves_the_checkpoint_each_time)
{
    struct ack *t = ack_new();
    struct docver v = { 0, 0 };

    cr_assert_eq(ack_push(t, "000000000000000000010", &(struct docver){ 100, 0 }), 0);
    cr_assert_eq(ack_push(t, "000000000000000000011", &(struct docver){ 100, 1 }), 1);
    cr_assert_null(ack_checkpoint(t, &v), "nothing finished yet");
    cr_assert_eq(ack_done(t, 0), 1);
    cr_assert_str_eq(ack_checkpoint(t, &v), "000000000000000000010");
    cr_assert_eq(v.second, 100);
    cr_assert_eq(v.ordinal, 0);
    cr_assert_null(ack_checkpoint(t, NULL), "unchanged since the last call");
    cr_assert_eq(ack_done(t, 1), 1);
    cr_assert_str_eq(ack_checkpoint(t, &v), "000000000000000000011");
    cr_assert_eq(v.ordinal, 1);
    cr_assert_eq(ack_pending(t), 0);
    ack_free(t);
}

Test(ack, a_late_record_holds_the_checkpoint_back)
{
    struct ack *t = ack_new();
    struct docver v;
    int64_t k[4];

    for (int i = 0; i < 4; i++) {
        char seq[SEQNUM_MAX + 1];

        snprintf(seq, sizeof(seq), "%021d", 100 + i);
        k[i] = ack_push(t, seq, &(struct docver){ 7, (uint32_t)i });
        cr_assert_eq(k[i], i);
    }
    cr_assert_eq(ack_done(t, k[1]), 0);
    cr_assert_eq(ack_done(t, k[3]), 0);
    cr_assert_null(ack_checkpoint(t, &v), "record 0 is still in flight");
    cr_assert_eq(ack_done(t, k[0]), 1);
    cr_assert_str_eq(ack_checkpoint(t, &v), "000000000000000000101", "stops before record 2");
    cr_assert_eq(v.ordinal, 1, "the version state is the checkpointed record's");
    cr_assert_eq(ack_pending(t), 2);
    cr_assert_eq(ack_done(t, k[2]), 1);
    cr_assert_str_eq(ack_checkpoint(t, &v), "000000000000000000103");
    cr_assert_eq(v.ordinal, 3);
    ack_free(t);
}

Test(ack, rejects_bad_input)
{
    struct ack *t = ack_new();
    int64_t a, b;

    cr_assert_eq(ack_push(t, "123", NULL), -EINVAL);
    cr_assert_eq(ack_push(t, "00000000000000000000x", NULL), -EINVAL);
    a = ack_push(t, "000000000000000000500", NULL);
    cr_assert_eq(a, 0);
    cr_assert_eq(ack_push(t, "000000000000000000500", NULL), -EALREADY, "duplicate");
    cr_assert_eq(ack_push(t, "0000000000000000000000000499", NULL), -EALREADY, "older");
    b = ack_push(t, "0000000000000000000000000501", NULL);
    cr_assert_eq(b, 1, "longer text, larger number: accepted");
    cr_assert_eq(ack_done(t, 7), -ENOENT, "never issued");
    cr_assert_eq(ack_done(t, -1), -ENOENT);
    cr_assert_eq(ack_done(t, b), 0);
    cr_assert_eq(ack_done(t, b), -EALREADY);
    cr_assert_eq(ack_done(t, a), 1);
    cr_assert_eq(ack_done(t, a), -ENOENT, "behind the checkpoint");
    ack_free(t);
    ack_free(NULL);
}

/* Thousands of records, finished in a seeded random order, with pushes
 * interleaved: after every ack_done the checkpoint, when it moves, is exactly
 * the end of the finished prefix — never past an unfinished record. */
Test(ack, random_completion_order_never_skips_an_unfinished_record)
{
    enum { N = 6000 };
    static char seqs[N][SEQNUM_MAX + 1];
    static bool finished[N];
    static int64_t order[N];
    struct ack *t = ack_new();
    unsigned long long rng = 0x9e3779b97f4a7c15ull; /* fixed seed: reproducible */
    size_t pushed = 0, nwait = 0, prefix = 0, moves = 0;
    struct docver v;
    const char *s;

    for (unsigned i = 0; i < N; i++) {
        make_seq(seqs[i], i);
        if (i)
            cr_assert_gt(seqnum_cmp(seqs[i], seqs[i - 1]), 0, "test data must increase");
    }
    while (prefix < N) {
        /* Push a random burst (up to 64 in flight), then finish a random
         * in-flight record. */
        unsigned burst = nwait < 64 ? (unsigned)((rng >> 33) % 4) : 0;

        for (unsigned j = 0; j < burst && pushed < N; j++, pushed++) {
            int64_t k = ack_push(t, seqs[pushed], &(struct docver){ 1, (uint32_t)pushed });

            cr_assert_eq(k, (int64_t)pushed);
            order[nwait++] = k;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if (!nwait)
            continue;
        size_t pick = (size_t)(rng % nwait);
        int64_t k = order[pick];

        order[pick] = order[--nwait];
        cr_assert_geq(ack_done(t, k), 0);
        finished[k] = true;
        s = ack_checkpoint(t, &v);
        size_t before = prefix;

        while (prefix < N && finished[prefix])
            prefix++;
        if (prefix == before) {
            cr_assert_null(s, "checkpoint moved although record %zu is unfinished", prefix);
            continue;
        }
        moves++;
        cr_assert_not_null(s);
        cr_assert_str_eq(s, seqs[prefix - 1], "checkpoint %s, prefix ends at %s", s,
                         seqs[prefix - 1]);
        cr_assert_eq(v.ordinal, prefix - 1);
        cr_assert_eq(ack_pending(t), pushed - prefix);
    }
    cr_assert_gt(moves, 20, "the order was random enough to hold the prefix back");
    cr_assert_lt(moves, N / 2, "and completions arrived out of order");
    cr_assert_eq(ack_pending(t), 0);
    /* The tracker keeps working after its ring was released. */
    cr_assert_eq(ack_push(t, "9000000000000000000000000000000000000000", NULL), N);
    cr_assert_eq(ack_done(t, N), 1);
    cr_assert_str_eq(ack_checkpoint(t, NULL), "9000000000000000000000000000000000000000");
    ack_free(t);
}

/* A record whose sequence number cannot be read (text that is not a record,
 * dead-lettered as it is) still holds the checkpoint back until it is
 * finished, and then moves it no further than the record before it. */
Test(ack, a_record_without_a_sequence_number_holds_the_checkpoint_and_moves_it_no_further)
{
    struct ack *t = ack_new();
    int64_t a, x, b;

    a = ack_push(t, "000000000000000000010", NULL);
    x = ack_push(t, NULL, NULL);
    b = ack_push(t, "000000000000000000012", NULL);
    cr_assert(a >= 0 && x >= 0 && b >= 0);
    cr_assert_eq(ack_push(t, "000000000000000000012", NULL), -EALREADY,
                 "order is still checked against the last real sequence number");
    cr_assert_eq(ack_done(t, b), 0);
    cr_assert_eq(ack_done(t, a), 1);
    cr_assert_str_eq(ack_checkpoint(t, NULL), "000000000000000000010",
                     "the record without a number is not finished: the checkpoint waits");
    cr_assert_eq(ack_done(t, x), 1);
    cr_assert_str_eq(ack_checkpoint(t, NULL), "000000000000000000012");
    cr_assert_eq(ack_pending(t), 0);
    ack_free(t);

    /* Alone at the start of a shard: nothing to checkpoint. */
    t = ack_new();
    x = ack_push(t, NULL, NULL);
    cr_assert_eq(ack_done(t, x), 1);
    cr_assert_null(ack_checkpoint(t, NULL));
    ack_free(t);
}

/* A record that could not be handed on (out of memory) is taken back, so no
 * later checkpoint passes it: it is read again. */
Test(ack, the_last_push_can_be_taken_back)
{
    struct ack *t = ack_new();
    int64_t a, b, c;

    a = ack_push(t, "000000000000000000010", NULL);
    b = ack_push(t, "000000000000000000011", NULL);
    cr_assert_eq(ack_unpush(t), 0);
    cr_assert_eq(ack_unpush(t), -ENOENT, "only the last push, once");
    cr_assert_eq(ack_pending(t), 1);
    c = ack_push(t, "000000000000000000011", NULL);
    cr_assert_eq(c, b, "the same record, pushed again, takes the same place");
    cr_assert_eq(ack_done(t, c), 0);
    cr_assert_eq(ack_done(t, a), 1);
    cr_assert_str_eq(ack_checkpoint(t, NULL), "000000000000000000011");
    cr_assert_eq(ack_unpush(t), -ENOENT, "a finished record cannot be taken back");
    ack_free(t);
}
