#!/usr/bin/env python3
"""Writes N DynamoDB stream records (GetRecords shape, one JSON object a line,
about 2 KB each: MODIFY with NewImage and OldImage of a ~900-byte post) for
`ddb2es replay --format stream` benchmarks.  Usage: replay-corpus.py N FILE.
Deterministic: the same N gives the same file."""
import json
import random
import sys

n, path = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(6)
words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]


def image(rev):
    text = " ".join(rnd.choice(words) for _ in range(75))
    return {"rev": {"N": str(rev)}, "text": {"S": text}, "likes": {"N": "%d.%02d" % (rnd.randrange(10**9), rev % 100)},
            "tags": {"SS": sorted({rnd.choice(words) for _ in range(4)})},
            "meta": {"M": {"lang": {"S": "en"}, "draft": {"BOOL": False},
                           "scores": {"L": [{"N": str(rnd.randrange(1000))} for _ in range(6)]}}}}


# A pool of bodies, so writing a million records stays quick; keys differ.
pool = [(json.dumps(image(2), separators=(",", ":"))[1:-1],
         json.dumps(image(1), separators=(",", ":"))[1:-1]) for _ in range(997)]

with open(path, "w") as f:
    t0 = 1700000000
    for i in range(n):
        author, ts = "user%05d" % (i % 50000), 1600000000 + i // 50000
        keys = '{"author":{"S":"%s"},"ts":{"N":"%d"}}' % (author, ts)
        new, old = pool[i % len(pool)]
        f.write('{"eventID":"%032x","eventName":"MODIFY","eventVersion":"1.1",'
                '"eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{'
                '"ApproximateCreationDateTime":%d,"Keys":%s,"NewImage":{%s,%s},'
                '"OldImage":{%s,%s},"SequenceNumber":"%021d","SizeBytes":1900,'
                '"StreamViewType":"NEW_AND_OLD_IMAGES"}}\n'
                % (i, t0 + i // 2000, keys, keys[1:-1], new, keys[1:-1], old, i + 1))
