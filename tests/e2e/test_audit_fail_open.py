#!/usr/bin/python3
"""Fail-open on a full disk ([audit] failure = fail_open). The test mounts a
1 MiB tmpfs for the trail (so it needs root) and fills it. Audited requests
still succeed, the framework counts and logs the lost records, and once
space returns the trail records how many were lost (audit_records_lost) and
still verifies."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import (check_verify, fill, mount_trail_tmpfs, post_note,  # noqa: E402
                       records, unmount_trail_tmpfs)


def main():
    demo = Demo(config="[audit]\nfailure = fail_open\n[log.app]\nfile = -\nlevel = info\n")
    trail = mount_trail_tmpfs(demo)
    try:
        demo.start()
        status, _ = post_note(demo, "before")
        check(status == 201, "before the disk is full: expected 201, got %d" % status)

        filler = os.path.join(trail, "filler")
        fill(filler)
        for i in range(20):
            status, _ = post_note(demo, "full-%d" % i)
            check(status == 201, "fail_open while the trail is full: expected 201, got %d"
                  % status)

        deadline = time.time() + 5
        log = ""
        while "requests proceed and the record is lost" not in log and time.time() < deadline:
            time.sleep(0.1)
            log = demo.read_stderr()
        check("requests proceed and the record is lost" in log,
              "no fail_open error logged; stderr:\n" + log[-2000:])

        os.unlink(filler)
        lost = []
        deadline = time.time() + 15
        while not lost and time.time() < deadline:
            post_note(demo, "after")
            lost = [r for r in records(demo, settle=0) if r["type"] == "audit_records_lost"]
            time.sleep(0.2)
        check(lost, "no audit_records_lost record 15 s after space returned")
        check(sum(r["data"]["lost"] for r in lost) >= 1, "audit_records_lost data %r"
              % [r["data"] for r in lost])

        check(demo.stop() == 0, "talon-demo did not exit cleanly")
        check_verify(demo)
        print("ok: %d records reported lost" % sum(r["data"]["lost"] for r in lost))
    finally:
        unmount_trail_tmpfs(demo, trail)


if __name__ == "__main__":
    main()
