#!/usr/bin/python3
"""No secret the demo receives reaches any file it writes: passwords (login,
user creation, password change), bearer tokens, other Authorization
values and cookies are absent from every file under the demo's working
directory (trail, logs, key files, stderr); the trail shows them as
"[REDACTED]" where a policy keeps bodies."""
import base64
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import call, check_verify, expect_record, find, login  # noqa: E402

WRONG_PASSWORD = "wrong-Pw-4f1d9c2e7b"
NEW_PASSWORD = "created-Pw-8e3a6b1f05"
CHANGED_PASSWORD = "changed-Pw-2c7d4e9a13"
COOKIE_SECRET = "cookie-Secret-6a0b3f8e21"
BASIC_SECRET = "basic-Secret-9d2e5c1b47"
BOGUS_BEARER = "f" * 63 + "e"
QUERY_SECRET = "query-Secret-7b4a1e0d93"
SEMICOLON_SECRET = "semicolon-Secret-5c8d2a"


def every_file(root):
    for dirpath, _, names in os.walk(root):
        for name in names:
            yield os.path.join(dirpath, name)


def main():
    with Demo() as demo:
        status, _, _ = call(demo, "POST", "/login", {"user": "alice", "password": WRONG_PASSWORD})
        check(status == 401, "wrong password: expected 401, got %d" % status)
        token = login(demo, "alice", headers={"Cookie": "session=" + COOKIE_SECRET})
        status, _, _ = call(demo, "POST", "/users",
                            {"name": "frank", "password": NEW_PASSWORD, "role": "user"},
                            token=token, headers={"Cookie": "session=" + COOKIE_SECRET,
                                                  "X-Request-ID": "create-frank"})
        check(status == 201, "POST /users: expected 201, got %d" % status)
        status, _, _ = call(demo, "PUT", "/users/frank", {"password": CHANGED_PASSWORD},
                            token=token)
        check(status == 204, "PUT /users/frank: expected 204, got %d" % status)
        status, _, _ = call(demo, "GET", "/users?api_token=" + QUERY_SECRET, token=token,
                            headers={"X-Request-ID": "query-secret"})
        check(status == 200, "GET /users: expected 200, got %d" % status)
        # One pair for talon's query parser ("x" = "1;password=..."), two for
        # servers that split on ';': the secret is redacted either way.
        status, _, _ = call(demo, "GET", "/users?x=1;password=" + SEMICOLON_SECRET, token=token,
                            headers={"X-Request-ID": "semicolon-secret"})
        check(status == 200, "GET /users with ';': expected 200, got %d" % status)
        status, _, _ = call(demo, "GET", "/users",
                            headers={"Authorization": "Bearer " + BOGUS_BEARER})
        check(status == 401, "bogus bearer token: expected 401, got %d" % status)
        basic = base64.b64encode(("alice:" + BASIC_SECRET).encode()).decode()
        status, _, _ = call(demo, "GET", "/users", headers={"Authorization": "Basic " + basic})
        check(status == 401, "basic auth: expected 401, got %d" % status)

        r = expect_record(demo, "POST /users request", type="http_request",
                          request_id="create-frank")
        check(r["data"]["request"]["body"]["password"] == "[REDACTED]",
              "request body password not redacted: %r" % r["data"]["request"])
        r = expect_record(demo, "query", type="http_request", request_id="query-secret")
        check(r["data"]["query"]["api_token"] == "[REDACTED]",
              "query secret not redacted: %r" % r["data"].get("query"))
        r = expect_record(demo, "query with ';'", type="http_request",
                          request_id="semicolon-secret")
        check(r["data"]["query"]["x"] == "1;password=[REDACTED]",
              "query secret after ';' not redacted: %r" % r["data"].get("query"))
        login_records = [x for x in find(demo, type="http_request", method="POST")
                         if x["request"]["route"] == "/login"]
        check(login_records, "no http_request record of POST /login")
        check(login_records[-1]["data"]["response"]["body"]["token"] == "[REDACTED]",
              "login response token not redacted: %r" % login_records[-1]["data"]["response"])

        check(demo.stop() == 0, "talon-demo did not exit cleanly")
        secrets = [WRONG_PASSWORD, "alice-admin-demo", NEW_PASSWORD, CHANGED_PASSWORD,
                   COOKIE_SECRET, BASIC_SECRET, basic, BOGUS_BEARER, token, QUERY_SECRET,
                   SEMICOLON_SECRET]
        files = list(every_file(demo.workdir))
        check(any("audit-" in f for f in files), "no trail file in %s" % demo.workdir)
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            for secret in secrets:
                check(secret.encode() not in data,
                      "secret %r found in %s" % (secret[:6] + "...", path))
        check_verify(demo)
    print("ok")


if __name__ == "__main__":
    main()
