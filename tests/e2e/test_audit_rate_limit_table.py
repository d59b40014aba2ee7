#!/usr/bin/python3
"""The login limiter's table cannot be flushed: failures from many source
addresses, with made-up user names, must not push a limited user out of a
full table and so reset that user's limit."""
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import PASSWORDS  # noqa: E402

CONFIG = """
[demo.auth]
login_limiter_entries = 8
"""


def login_from(demo, source_ip, user, password):
    """POST /login from a chosen loopback source address; returns the status."""
    c = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=20,
                                   source_address=(source_ip, 0))
    try:
        c.request("POST", "/login", body=json.dumps({"user": user, "password": password}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def main():
    with Demo(config=CONFIG) as demo:
        # Five wrong passwords for dave, each from its own address: dave is
        # limited, none of the addresses is.
        for i in range(5):
            status = login_from(demo, "127.0.1.%d" % (i + 1), "dave", "wrong-%d" % i)
            check(status == 401, "wrong password %d for dave: expected 401, got %d" % (i, status))
        status = login_from(demo, "127.0.1.50", "dave", PASSWORDS["dave"])
        check(status == 429, "dave after 5 failures: expected 429, got %d" % status)

        # Twenty failures for unknown users from twenty new addresses: more
        # than the table holds.
        for i in range(20):
            status = login_from(demo, "127.0.2.%d" % (i + 1), "nobody%d" % i, "x")
            check(status == 401, "unknown user %d: expected 401, got %d" % (i, status))

        status = login_from(demo, "127.0.1.60", "dave", PASSWORDS["dave"])
        check(status == 429, "dave after the table filled up: expected 429 (still limited), "
              "got %d" % status)

        # The user's own limit is the only one: a different user logs in fine.
        status = login_from(demo, "127.0.1.61", "bob", PASSWORDS["bob"])
        check(status == 200, "bob from a fresh address: expected 200, got %d" % status)
    print("a full limiter table keeps a limited user limited")


if __name__ == "__main__":
    main()
