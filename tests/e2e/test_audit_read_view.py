#!/usr/bin/python3
"""GET /audit shows every matching record and bounds its page. A record
holding "\\u0000" (a client sent %00 in its query) used to be dropped from
the auditor's view because jansson refuses NUL by default, so any client
could hide its own probes; now it is shown, and the response says how many
records could not be shown. limit=0 used to return the whole trail; it is
rejected like any limit outside 1 to 1000."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import call, login  # noqa: E402


def main():
    with Demo() as demo:
        status, _, _ = demo.request("GET", "/notes?q=%00", headers={"X-Request-ID": "nulprobe"})
        check(status == 400, "GET /notes?q=%%00: expected 400, got %d" % status)
        carol = login(demo, "carol")

        deadline = time.time() + 5
        while True:
            status, _, body = call(demo, "GET", "/audit?request_id=nulprobe", token=carol)
            check(status == 200, "GET /audit?request_id=nulprobe: %d %r" % (status, body))
            if body["count"] > 0 or time.time() > deadline:
                break
            time.sleep(0.1)
        check(body["count"] == 1, "the record of the %%00 probe is not shown: %r" % body)
        rec = body["records"][0]
        check(rec["request"]["id"] == "nulprobe" and rec["data"]["query"] == {"q": "\u0000"},
              "unexpected record for the probe: %r" % rec)
        check(body["not_shown"] == 0 and body["skipped_lines"] == 0,
              "GET /audit reports records not shown: %r" % body)

        for limit in ("0", "1001"):
            status, _, body = call(demo, "GET", "/audit?limit=" + limit, token=carol)
            check(status == 400 and "expected 1 to 1000" in body["description"],
                  "limit=%s: expected 400 'expected 1 to 1000', got %d %r"
                  % (limit, status, body))
        status, _, body = call(demo, "GET", "/audit?limit=1", token=carol)
        check(status == 200 and body["count"] == 1, "limit=1: %d %r" % (status, body))
    print("ok")


if __name__ == "__main__":
    main()
