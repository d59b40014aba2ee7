#!/usr/bin/python3
"""A sync-audited request that the drain gives up on. SIGTERM comes while
POST /notes waits for an fdatasync that takes 3 s (a preloaded slow
disk, tests/e2e/fdatasync_delay.c), and drain_timeout is 1 s. The client
gets 503. Its note_created and http_request records may still be written
once the fdatasync returns, so an http_request_abandoned record (outcome
failure) must follow them in the trail. A request that got 201 before the stop has no such record, and
the trail verifies."""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import BUILD, Demo, check, fail  # noqa: E402
from audit_e2e import check_verify, post_note, records  # noqa: E402

SHIM = os.path.join(BUILD, "tests", "libtalon_test_fdatasync_delay.so")
CONFIG = ("[server]\ndrain_timeout = 1\n\n"
          "[audit.policy]\nrule = POST /notes metadata sync\nrule = * * none\n")


def main():
    if not os.path.exists(SHIM):
        fail("%s is missing: build the project first" % SHIM)
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {
        "LD_PRELOAD": SHIM,
        "TALON_TEST_FDATASYNC_DELAY_MS": "3000",
        # ASan wants its runtime first among the preloaded libraries; the
        # shim is not instrumented and needs none.
        "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0",
    }
    demo = Demo(config=CONFIG, env=env)
    try:
        flag = demo.path("slow-disk")
        env["TALON_TEST_FDATASYNC_FLAG"] = flag
        demo.start()

        status, _ = post_note(demo, "acked-1")
        check(status == 201, "POST /notes before the stop: expected 201, got %d" % status)

        open(flag, "w").close()  # each fdatasync now takes 3 s
        result = {}

        def client():
            result["status"], result["body"] = post_note(demo, "abandoned-1")

        t = threading.Thread(target=client)
        t.start()
        time.sleep(0.5)  # the request is held, its fdatasync under way
        demo.proc.send_signal(signal.SIGTERM)
        t.join(20)
        check(not t.is_alive(), "the held POST /notes got no answer within 20 s of SIGTERM")
        os.unlink(flag)
        check(result.get("status") == 503, "held POST /notes cut by the drain: expected 503, "
              "got %r" % result.get("status"))
        rc = demo.proc.wait(30)
        check(rc == 0, "talon-demo exited with %r after SIGTERM" % rc)

        recs = records(demo, settle=0)
        mine = [r for r in recs if (r.get("request") or {}).get("id") == "abandoned-1"]
        abandoned = [r for r in mine if r["type"] == "http_request_abandoned"]
        check(len(abandoned) == 1, "expected one http_request_abandoned record for the cut "
              "request, found %d among %r" % (len(abandoned), [r["type"] for r in mine]))
        if abandoned:
            a = abandoned[0]
            check(a["outcome"] == "failure", "http_request_abandoned: outcome %r" % a["outcome"])
            check(a["data"].get("status") == 503, "http_request_abandoned: data %r" % a["data"])
            check(all(r["seq"] < a["seq"] for r in mine if r is not a),
                  "http_request_abandoned must follow the request's other records: %r"
                  % [(r["seq"], r["type"]) for r in mine])
            check("no change was applied" in (a.get("reason") or ""),
                  "http_request_abandoned: reason %r" % a.get("reason"))
        acked = [r for r in recs if (r.get("request") or {}).get("id") == "acked-1"]
        check(sorted(r["type"] for r in acked) == ["http_request", "note_created"],
              "the POST answered 201: records %r" % [r["type"] for r in acked])
        check_verify(demo)
        print("ok: a sync request cut by the drain is answered 503 and marked abandoned "
              "in the trail")
    finally:
        demo.cleanup()


if __name__ == "__main__":
    main()
