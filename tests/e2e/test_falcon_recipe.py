#!/usr/bin/python3
"""falcon-recipe writes the exact lines of the Python Falcon logging recipe:
"Request: <method> <uri>" from process_resource, "Response: <status>" from
process_response (404s included), and login events to the audit logger."""
import json
import os
import re
import stat

from talon_e2e import BUILD, Demo, check, fail

RECIPE = os.path.join(BUILD, "falcon-recipe")
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    check(data.endswith(b"\n"), "%s does not end with a newline" % path)
    return data.decode("utf-8").splitlines()


def strip_time(lines, path):
    """Check each line starts with an RFC 3339 UTC timestamp and drop it."""
    out = []
    for line in lines:
        m = re.match(TIMESTAMP + " (.*)$", line)
        check(m is not None, "%s: line without a timestamp: %r" % (path, line))
        out.append(m.group(1))
    return out


def main():
    if not os.path.exists(RECIPE):
        fail("falcon-recipe not built at %s" % RECIPE)
    with Demo(binary=RECIPE) as app:
        status, _, body = app.request("GET", "/things?limit=2")
        check(status == 200, "GET /things: status %d" % status)
        check(len(json.loads(body)) == 2, "GET /things: unexpected body %r" % body)
        status, _, _ = app.request("GET", "/things?access_token=recipe-Secret-3c9f&limit=1")
        check(status == 200, "GET /things with a token: status %d" % status)
        status, _, _ = app.request("GET", "/nowhere")
        check(status == 404, "GET /nowhere: status %d" % status)
        headers = {"Content-Type": "application/json"}
        status, _, _ = app.request("POST", "/login", body=json.dumps(
            {"username": "alice", "password": "wonderland"}), headers=headers)
        check(status == 200, "good login: status %d" % status)
        status, _, _ = app.request("POST", "/login", body=json.dumps(
            {"username": "alice", "password": "guess-Zq9"}), headers=headers)
        check(status == 401, "bad login: status %d" % status)
        code = app.stop()
        check(code == 0, "falcon-recipe exited with %s; stderr:\n%s" % (code, app.read_stderr()))

        app_log = app.path("app.log")
        audit_log = app.path("audit.log")
        for path in (app_log, audit_log):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            check(mode == 0o640, "%s has mode %o, expected 640" % (path, mode))

        lines = strip_time(read_lines(app_log), app_log)
        recipe = [l for l in lines if " Request: " in l or " Response: " in l]
        expected = [
            "INFO app Request: GET /things?limit=2",
            "INFO app Response: 200 OK",
            "INFO app Request: GET /things?access_token=[REDACTED]&limit=1",
            "INFO app Response: 200 OK",
            "INFO app Response: 404 Not Found",
            "INFO app Request: POST /login",
            "INFO app Response: 200 OK",
            "INFO app Request: POST /login",
            "INFO app Response: 401 Unauthorized",
        ]
        if recipe != expected:
            fail("app.log request lines differ:\n  got      %r\n  expected %r" % (recipe, expected))
        check(lines[0] == "INFO app falcon-recipe starting on 127.0.0.1:0",
              "app.log first line: %r" % lines[0])
        check(lines[-1] == "INFO app falcon-recipe stopped", "app.log last line: %r" % lines[-1])

        audit = strip_time(read_lines(audit_log), audit_log)
        expected_audit = [
            "INFO audit login user=alice outcome=success client.ip=127.0.0.1",
            "INFO audit login user=alice outcome=failure client.ip=127.0.0.1",
        ]
        if audit != expected_audit:
            fail("audit.log differs:\n  got      %r\n  expected %r" % (audit, expected_audit))

        for path in (app_log, audit_log):
            with open(path, "rb") as f:
                data = f.read()
            check(b"wonderland" not in data and b"guess-Zq9" not in data,
                  "%s contains a password" % path)
    print("ok")


if __name__ == "__main__":
    main()
