#!/usr/bin/python3
"""Crash recovery's app-log lines name what they found: a complete last
record whose MAC fails is reported as modified, at ERROR, and the WARN line
that gives where its bytes went does not call them torn."""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402


def edit_last_record(trail):
    """Change one digit of the last record's time: the line still parses."""
    path = sorted(glob.glob(os.path.join(trail, "audit-*.jsonl")))[-1]
    with open(path, "rb") as f:
        data = f.read()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    at = data.index(b'"time":"', start) + len(b'"time":"') + 25  # last microsecond digit
    digit = b"1" if data[at:at + 1] != b"1" else b"2"
    with open(path, "wb") as f:
        f.write(data[:at] + digit + data[at + 1:])


def main():
    demo = Demo()
    with demo:
        status, _, _ = demo.request("GET", "/health")
        check(status == 200, "GET /health: %d" % status)
        # kill -9, so the last record is in the epoch whose key the server
        # still has (a clean stop seals the epoch and evolves the key).
        demo.kill9()
        edit_last_record(demo.path("var", "audit"))
        demo.start()
        demo.stop()
        with open(demo.path("var", "log", "app.log"), errors="replace") as f:
            log = f.read()
    recovery = [line for line in log.splitlines() if "audit recovery" in line]
    check(any("ERROR" in line and "modified" in line for line in recovery),
          "no ERROR line calls the edited record modified:\n" + "\n".join(recovery))
    check(any("WARN" in line and "1 modified record" in line for line in recovery),
          "no WARN line says where the modified record went:\n" + "\n".join(recovery))
    check(not any("torn bytes" in line for line in recovery),
          "a recovery line calls the modified record torn:\n" + "\n".join(recovery))
    print("ok")


if __name__ == "__main__":
    main()
