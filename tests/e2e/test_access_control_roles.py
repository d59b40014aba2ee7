#!/usr/bin/python3
"""Who may call what on the real talon-demo: every role (none, user,
auditor, admin, an invalid token) against every protected endpoint
(GET /audit, the /users admin endpoints, POST /logout). A missing or invalid
token gets 401 with WWW-Authenticate, a wrong role 403, and each is audited as
authz_fail with its request id; the right role passes. Tokens expire
(token_ttl = 2s here): the same token then gets 401, audited. Failed logins
are limited per source and per user within login_window, and allowed again
after it."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import PASSWORDS, call, check_complete, check_verify, expect_record, login  # noqa: E402

CONFIG = """
[demo.auth]
token_ttl = 2s
login_max_failures = 3
login_window = 3s
"""

# method, path, body, roles allowed. PUT /users/{name} is also allowed to the
# user it names (checked apart).
ENDPOINTS = [
    ("GET", "/audit?limit=1", None, {"auditor"}),
    ("GET", "/users", None, {"admin"}),
    ("POST", "/users", {"name": "erin-%s", "password": "erin-password-1", "role": "user"},
     {"admin"}),
    ("PUT", "/users/dave", {"password": "dave-password-2"}, {"admin"}),
    ("PUT", "/users/erin-%s/role", {"role": "auditor"}, {"admin"}),
    ("DELETE", "/users/erin-%s", None, {"admin"}),
    ("POST", "/logout", None, {"user", "auditor", "admin"}),
]
USERS = {"user": "bob", "auditor": "carol", "admin": "alice"}


def matrix(demo):
    checked = 0
    for caller in ("none", "invalid", "user", "auditor", "admin"):
        for i, (method, path, body, allowed) in enumerate(ENDPOINTS):
            # A fresh token per call: logout and password changes end sessions.
            token = None
            if caller == "invalid":
                token = "0" * 64
            elif caller != "none":
                token = login(demo, USERS[caller])
            tag = "%s-%d" % (caller, i)
            target = path % tag if "%s" in path else path
            doc = json.loads(json.dumps(body).replace("%s", tag)) if body else None
            if caller == "admin" and target.startswith("/users/erin-"):
                status, _, _ = call(demo, "POST", "/users", {"name": "erin-" + tag,
                                    "password": "erin-password-1", "role": "user"},
                                    token=login(demo, "alice"))
                check(status == 201, "creating erin-%s: %d" % (tag, status))
            rid = "acl-" + tag
            status, headers, reply = call(demo, method, target, doc, token=token,
                                          headers={"X-Request-ID": rid})
            what = "%s %s as %s" % (method, target, caller)
            if caller in allowed:
                check(status not in (401, 403), "%s: %d %r" % (what, status, reply))
                check(200 <= status < 300, "%s: %d %r" % (what, status, reply))
            else:
                want = 401 if caller in ("none", "invalid") else 403
                check(status == want, "%s: expected %d, got %d %r" % (what, want, status, reply))
                if want == 401:
                    check(headers.get("www-authenticate", "").startswith("Bearer"),
                          "%s: 401 without WWW-Authenticate: %r" % (what, headers))
                r = expect_record(demo, what, type="authz_fail", request_id=rid)
                check(r["outcome"] == "failure", "%s: outcome %r" % (what, r["outcome"]))
                check(r["reason"], "%s: authz_fail without a reason" % what)
                if caller in USERS:
                    check(r["actor"]["id"] == USERS[caller], "%s: actor %r" % (what, r["actor"]))
                check_complete(r, what)
            checked += 1
    # A user may change their own password, and no one else's. The admin
    # row above set dave's password.
    token = login(demo, "dave", "dave-password-2")
    status, _, _ = call(demo, "PUT", "/users/dave", {"password": "dave-password-3"}, token=token)
    check(status == 204, "dave changing his own password: %d" % status)
    status, _, _ = call(demo, "PUT", "/users/bob", {"password": "bob-password-3"},
                        token=login(demo, "dave", "dave-password-3"),
                        headers={"X-Request-ID": "acl-dave-bob"})
    check(status == 403, "dave changing bob's password: %d" % status)
    expect_record(demo, "dave changing bob's password", type="authz_fail",
                  request_id="acl-dave-bob", actor="dave")
    return checked


def expiry(demo):
    token = login(demo, "carol")
    status, _, _ = call(demo, "GET", "/audit?limit=1", token=token)
    check(status == 200, "GET /audit with a fresh token: %d" % status)
    deadline = time.time() + 15
    while True:
        time.sleep(0.5)
        status, headers, body = call(demo, "GET", "/audit?limit=1", token=token,
                                     headers={"X-Request-ID": "expired-token"})
        if status != 200 or time.time() > deadline:
            break
    check(status == 401, "GET /audit with an expired token: %d %r" % (status, body))
    r = expect_record(demo, "expired token", type="authz_fail", request_id="expired-token")
    check("expired" in r["reason"], "expired token reason: %r" % r["reason"])


def login_limit(demo):
    for i in range(3):
        status, _, _ = call(demo, "POST", "/login", {"user": "bob", "password": "wrong-%d" % i})
        check(status == 401, "failed login %d: %d" % (i, status))
    status, headers, _ = call(demo, "POST", "/login", {"user": "bob", "password": PASSWORDS["bob"]},
                              headers={"X-Request-ID": "limited"})
    check(status == 429, "fourth login within the window: %d" % status)
    r = expect_record(demo, "login limit", type="authn_login_fail_max", request_id="limited")
    check(r["data"]["max_failures"] == 3 and r["data"]["window_s"] == 3,
          "limit record data: %r" % r["data"])
    wait = int(headers.get("retry-after", "0"))
    check(1 <= wait <= 3, "Retry-After %r for a 3 s window" % headers.get("retry-after"))
    time.sleep(wait + 0.5)
    login(demo, "bob")  # allowed again after the window


def main():
    with Demo(config=CONFIG) as demo:
        checked = matrix(demo)
        expiry(demo)
        login_limit(demo)
        check(demo.stop() == 0, "talon-demo did not exit cleanly")
        check_verify(demo)
    print("ok: %d role x endpoint combinations; expiry and login limit audited" % checked)


if __name__ == "__main__":
    main()
