#!/usr/bin/python3
"""Failed logins are rate-limited per source address and per user (5 per
minute by default): the sixth attempt gets 429 with Retry-After without
checking the password, and each rejected attempt is audited as
authn_login_fail_max."""
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import PASSWORDS, check_complete, check_verify, expect_record  # noqa: E402


def login_from(demo, source_ip, user, password, request_id):
    """POST /login from a chosen loopback source address (127.0.0.0/8)."""
    c = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=20,
                                   source_address=(source_ip, 0))
    try:
        c.request("POST", "/login", body=json.dumps({"user": user, "password": password}),
                  headers={"Content-Type": "application/json", "X-Request-ID": request_id})
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def main():
    with Demo() as demo:
        for i in range(5):
            status, _ = login_from(demo, "127.0.0.1", "dave", "guess-%d" % i, "guess-%d" % i)
            check(status == 401, "failed login %d: expected 401, got %d" % (i, status))
            expect_record(demo, "failed login %d" % i, type="authn_login_fail",
                          request_id="guess-%d" % i)

        # Same source, right password: the source address is limited.
        status, headers = login_from(demo, "127.0.0.1", "dave", PASSWORDS["dave"], "limited-ip")
        check(status == 429, "sixth login from one address: expected 429, got %d" % status)
        check(int(headers.get("retry-after", "0")) > 0, "429 without Retry-After: %r" % headers)
        r = expect_record(demo, "source limit", type="authn_login_fail_max",
                          request_id="limited-ip")
        check(r["outcome"] == "failure", "source limit outcome %r" % r["outcome"])
        check(r["target"] == {"type": "user", "id": "dave"}, "source limit target %r" % r["target"])
        check(r["data"]["limited_by"] == "source address", "source limit data %r" % r["data"])
        check_complete(r, "source limit")

        # Another source, same user: the user is limited too.
        status, _ = login_from(demo, "127.0.0.2", "dave", PASSWORDS["dave"], "limited-user")
        check(status == 429, "login as a limited user from another address: expected 429, "
              "got %d" % status)
        r = expect_record(demo, "user limit", type="authn_login_fail_max",
                          request_id="limited-user")
        check(r["data"]["limited_by"] == "user", "user limit data %r" % r["data"])
        check(r["source"]["ip"] == "127.0.0.2", "user limit source %r" % r["source"])

        # Another source, another user: not limited.
        status, _ = login_from(demo, "127.0.0.2", "bob", PASSWORDS["bob"], "other-user")
        check(status == 200, "login from a clean address as another user: expected 200, "
              "got %d" % status)
        expect_record(demo, "other user", type="authn_login_success", request_id="other-user")

        check(demo.stop() == 0, "talon-demo did not exit cleanly")
        check_verify(demo)
    print("ok")


if __name__ == "__main__":
    main()
