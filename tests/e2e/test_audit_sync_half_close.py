#!/usr/bin/python3
"""Pipelined requests behind a held response, then a half-close: the
client sends several requests in one write and shuts its write side
(shutdown(SHUT_WR), as `nc -N` does). The native engine must send a
response to every request, in order, and close the connection after the
last one, as libmicrohttpd does, also when the end of stream is read while
a response is held. Two cases: GET /debug/hold followed by
GETs, and sync-audited POST /notes requests only, whose acknowledged
records must all be in the trail."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import check_verify, records, stop_cleanly  # noqa: E402
from test_native_hostile import exchange, statuses  # noqa: E402

CONFIG = ("[server]\nengine = native\nconnection_timeout = 10s\n\n"
          "[audit.policy]\nrule = POST /notes metadata sync\nrule = * * none\n")
HELLO = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"


def post_note(rid):
    body = json.dumps({"text": rid}).encode()
    return (b"POST /notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Request-ID: %s\r\nContent-Length: %d\r\n\r\n" % (rid.encode(), len(body)) + body)


def held_then_gets(demo):
    """The end of stream is read while the first request is held for 300 ms."""
    out, closed = exchange(demo, b"GET /debug/hold?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n" + HELLO * 3,
                           timeout=5, shut=True)
    check(statuses(out) == [200] * 4,
          "held request, 3 GETs, then shutdown(SHUT_WR): statuses %r, expected 4 times 200"
          % statuses(out))
    check(closed, "held request, 3 GETs, then shutdown(SHUT_WR): not closed within 5 s")


def sync_posts(demo, rounds=20, depth=8):
    """Send depth sync POST /notes per connection, then half-close. Each
    request is held until its record is durable."""
    acked = []
    for n in range(rounds):
        rids = ["hc%d-%d" % (n, k) for k in range(depth)]
        out, closed = exchange(demo, b"".join(post_note(r) for r in rids), timeout=5, shut=True)
        got = statuses(out)
        check(got == [201] * depth, "round %d: %d sync POSTs, then shutdown(SHUT_WR): statuses "
              "%r, expected %d times 201" % (n, depth, got, depth))
        ids = re.findall(rb"X-Request-ID: (\S+)\r\n", out)
        check([i.decode() for i in ids] == rids,
              "round %d: responses out of order or missing: X-Request-IDs %r" % (n, ids))
        check(closed, "round %d: not closed within 5 s after the last response" % n)
        acked += rids
    present = {(r.get("request") or {}).get("id") for r in records(demo, settle=0)
               if r["type"] == "http_request"}
    missing = [rid for rid in acked if rid not in present]
    check(not missing, "%d acknowledged sync POSTs have no http_request record, e.g. %s"
          % (len(missing), missing[:5]))


def main():
    demo = Demo(args=["--test-routes"], config=CONFIG)
    try:
        demo.start()
        held_then_gets(demo)
        sync_posts(demo)
        stop_cleanly(demo)
        check_verify(demo)
        print("ok: pipelined requests behind held responses answered after a half-close")
    finally:
        demo.cleanup()


if __name__ == "__main__":
    main()
