#!/usr/bin/python3
"""Sync mode: a 2xx means the record is already in the trail file. kill -9
of talon-demo during sync-mode load, repeated: every request
acknowledged with a 2xx has its record in the trail after the restart
(matched by X-Request-ID), the restart recovers the torn tail, and
`talon audit verify` passes (--open after each crash, strictly after the
final clean stop).

    test_audit_crash.py [--rounds N] [--threads N]   (defaults 5 and 4;
    TALON_AUDIT_CRASH_ROUNDS sets the rounds too, TALON_LONG=1 makes it 20)"""
import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import call, check_verify, records  # noqa: E402


def client(port, prefix, stop, acked, errors):
    """POST /notes until stop is set; append the id of each 2xx to acked."""
    conn = None
    i = 0
    while not stop.is_set():
        rid = "%s-%d" % (prefix, i)
        i += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/notes", body=json.dumps({"text": rid}),
                         headers={"Content-Type": "application/json", "X-Request-ID": rid})
            r = conn.getresponse()
            r.read()
            if 200 <= r.status < 300:
                acked.append(rid)
            elif r.status != 503:
                errors.append("%s: unexpected status %d" % (rid, r.status))
        except (OSError, http.client.HTTPException):
            # The server was killed: the request was never acknowledged.
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn is not None:
        conn.close()


def run_round(demo, n, threads):
    stop = threading.Event()
    acked, errors = [], []
    workers = [threading.Thread(target=client, args=(demo.port, "r%d-t%d" % (n, t), stop,
                                                     acked, errors))
               for t in range(threads)]
    for w in workers:
        w.start()
    deadline = time.time() + 20
    while len(acked) < 50 * threads and time.time() < deadline:
        time.sleep(0.02)
    demo.kill9()
    stop.set()
    for w in workers:
        w.join(30)
    check(not errors, "round %d: %s" % (n, errors[:5]))
    check(acked, "round %d: no request was acknowledged before the kill" % n)
    return acked


def check_sync_ack(demo, count=20):
    """A 2xx from a sync route means its records are in the file already:
    read the trail right after each response, without waiting."""
    for i in range(count):
        rid = "ack-%d" % i
        status, _, _ = call(demo, "POST", "/notes", {"text": rid}, headers={"X-Request-ID": rid})
        check(status == 201, "POST /notes: expected 201, got %d" % status)
        types = {r["type"] for r in records(demo, settle=0)
                 if (r.get("request") or {}).get("id") == rid}
        check({"http_request", "note_created"} <= types,
              "%s acknowledged but its records are not in the trail yet: %r" % (rid, types))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    long_run = os.environ.get("TALON_LONG") == "1"
    parser.add_argument("--rounds", type=int,
                        default=int(os.environ.get("TALON_AUDIT_CRASH_ROUNDS",
                                                   "20" if long_run else "5")))
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    demo = Demo()
    try:
        demo.start()
        check_sync_ack(demo)
        total = 0
        for n in range(args.rounds):
            acked = run_round(demo, n, args.threads)
            demo.start()
            present = {(r.get("request") or {}).get("id") for r in records(demo, settle=0)
                       if r["type"] == "http_request"}
            missing = [rid for rid in acked if rid not in present]
            check(not missing, "round %d: %d of %d acknowledged records missing after kill -9, "
                  "e.g. %s" % (n, len(missing), len(acked), missing[:5]))
            recovered = [r for r in records(demo, settle=0) if r["type"] == "audit_recovered"]
            check_verify(demo, open_trail=True)
            total += len(acked)
            print("round %d: %d acknowledged, all present; %d recoveries so far"
                  % (n, len(acked), len(recovered)))
        check(demo.stop(signal.SIGTERM) == 0, "talon-demo did not exit cleanly")
        check_verify(demo)
        print("ok: %d rounds, %d acknowledged records, all present" % (args.rounds, total))
    finally:
        demo.cleanup()


if __name__ == "__main__":
    main()
