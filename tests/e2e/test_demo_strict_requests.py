#!/usr/bin/python3
"""Requests that two readers could understand differently get 400 from the
real talon-demo: two Authorization fields (the application would read the
first, a proxy may read the last), an unknown or repeated GET /audit query
parameter (a typo such as actr=bob used to return every record), and a
date that does not exist (since=2026-02-30 used to mean March 2), in GET
/audit and in `talon audit query`."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import CLI, Demo, check  # noqa: E402
from audit_e2e import call, login, trail_dir  # noqa: E402


def two_authorizations(demo):
    bob, dave = login(demo, "bob"), login(demo, "dave")
    for first, second in ((bob, dave), (bob, bob)):
        raw = ("POST /notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
               "Content-Length: 12\r\nConnection: close\r\n\r\n{\"text\":\"x\"}"
               % (first, second)).encode()
        reply = demo.raw(raw).decode(errors="replace")
        check(reply.startswith("HTTP/1.1 400"), "two Authorization fields: %r" % reply[:200])
        check("more than one Authorization header field" in reply,
              "two Authorization fields: unclear error %r" % reply)
    status, _, body = call(demo, "GET", "/notes")
    check(status == 200 and body == {"notes": []}, "a note was created: %d %r" % (status, body))


def audit_parameters(demo):
    carol = login(demo, "carol")
    cases = [
        ("/audit?actr=bob", ['unknown query parameter "actr"', "expected type, actor,",
                             "limit or order"]),
        ("/audit?actor=bob&actor=dave", ['"actor" is given more than once']),
        ("/audit?since=2026-02-30", ['invalid since time "2026-02-30": 2026-02 has 28 days']),
        ("/audit?until=2025-02-29T10:00:00Z", ["2025-02 has 28 days"]),
        ("/audit?since=2026-04-31", ["2026-04 has 30 days"]),
    ]
    for target, expect in cases:
        status, _, body = call(demo, "GET", target, token=carol)
        check(status == 400, "GET %s: expected 400, got %d %r" % (target, status, body))
        for text in expect:
            check(text in body["description"], "GET %s: %r not in %r"
                  % (target, text, body["description"]))
    for target in ("/audit?actor=bob&limit=5", "/audit?since=2028-02-29", "/audit"):
        status, _, body = call(demo, "GET", target, token=carol)
        check(status == 200, "GET %s: expected 200, got %d %r" % (target, status, body))


def cli_dates(demo):
    for arg, expect in (("2026-02-30", "2026-02 has 28 days"),
                        ("2026-06-31T00:00:00Z", "2026-06 has 30 days")):
        p = subprocess.run([CLI, "audit", "query", "--since", arg, trail_dir(demo)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode(errors="replace")
        check(p.returncode != 0, "talon audit query --since %s: exit 0\n%s" % (arg, out))
        check(expect in out, "talon audit query --since %s: %r not in\n%s" % (arg, expect, out))


def main():
    with Demo() as demo:
        two_authorizations(demo)
        audit_parameters(demo)
        cli_dates(demo)
    print("ok")


if __name__ == "__main__":
    main()
