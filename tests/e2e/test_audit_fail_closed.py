#!/usr/bin/python3
"""Fail-closed on a full disk. The test mounts a 1 MiB tmpfs for the trail
(so it needs root) and fills it. Audited requests then get 503 with a JSON
error, an error is logged, and nothing acknowledged is missing from the
trail. Requests succeed again once space returns, and the app log says so. While
the disk is full the middleware 503 carries Retry-After, unaudited routes
are served, and the trail on disk verifies (no torn record)."""
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import (call, check_verify, fill, login, mount_trail_tmpfs,  # noqa: E402
                       post_note, records, unmount_trail_tmpfs)


def load(demo, prefix, count, acked, statuses):
    for i in range(count):
        rid = "%s-%d" % (prefix, i)
        status, _ = post_note(demo, rid)
        statuses.append(status)
        if 200 <= status < 300:
            acked.append(rid)


def main():
    # The app log goes to stderr so the test reads the error wherever the
    # default log file is.
    demo = Demo(config="[log.app]\nfile = -\nlevel = info\n")
    trail = mount_trail_tmpfs(demo)
    try:
        demo.start()
        token = login(demo, "bob")
        acked = []
        for i in range(5):
            status, _ = post_note(demo, "before-%d" % i, token)
            check(status == 201, "before the disk is full: expected 201, got %d" % status)
            acked.append("before-%d" % i)

        filler = os.path.join(trail, "filler")
        fill(filler)
        statuses = []
        workers = [threading.Thread(target=load, args=(demo, "full-t%d" % t, 20, acked, statuses))
                   for t in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        check(statuses.count(503) > 0, "no 503 while the trail is full: %r" % sorted(set(statuses)))
        check(set(statuses) <= {201, 503}, "unexpected statuses while full: %r" % set(statuses))
        status, headers, body = call(demo, "POST", "/notes", {"text": "full-last"},
                                     headers={"X-Request-ID": "full-last"})
        check(status == 503, "a request while the trail is full: expected 503, got %d" % status)
        check(headers.get("retry-after") == "1", "503 without Retry-After: 1: %r" % headers)
        # Reads that are not audited (policy none) are still served.
        status, _, _ = call(demo, "GET", "/health")
        check(status == 200, "GET /health while the trail is full: %d" % status)
        # What is on disk is whole: no torn record while the disk is full.
        check_verify(demo, open_trail=True)
        check(isinstance(body, dict) and "audit trail" in body.get("description", ""),
              "503 without a clear JSON error: %r" % body)
        # The app log is buffered for up to a second: poll.
        deadline = time.time() + 5
        while True:
            log = demo.read_stderr()
            app_log = demo.path("var", "log", "app.log")
            if os.path.exists(app_log):
                with open(app_log, errors="replace") as f:
                    log += f.read()
            if ("audit trail" in log and "No space left on device" in log) or time.time() > deadline:
                break
            time.sleep(0.1)
        check("audit trail" in log and "No space left on device" in log,
              "no error logged while the trail is full; stderr and app log:\n" + log[-2000:])

        os.unlink(filler)
        deadline = time.time() + 15
        while True:
            status, _ = post_note(demo, "after")
            if status == 201:
                acked.append("after")
                break
            check(time.time() < deadline, "requests still fail 15 s after space returned "
                  "(last status %d)" % status)
            time.sleep(0.2)

        deadline = time.time() + 5
        while "writable again" not in demo.read_stderr() and time.time() < deadline:
            time.sleep(0.1)
        check("writable again" in demo.read_stderr(), "the recovery of the trail is not in the "
              "app log:\n" + demo.read_stderr()[-2000:])
        present = {(r.get("request") or {}).get("id") for r in records(demo, settle=0)}
        missing = [rid for rid in acked if rid not in present]
        check(not missing, "acknowledged but not in the trail: %s" % missing[:10])
        check(demo.stop() == 0, "talon-demo did not exit cleanly")
        check_verify(demo)
        print("ok: %d acknowledged, %d refused with 503" % (len(acked), statuses.count(503) + 1))
    finally:
        unmount_trail_tmpfs(demo, trail)


if __name__ == "__main__":
    main()
