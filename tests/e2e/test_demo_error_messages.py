#!/usr/bin/python3
"""Error messages of talon-demo say what is wrong, in the client's terms:
a login with a well-formed body but an invalid user name names the rule for
user names (it used to say "expected a JSON object"); a note whose text
holds \\u0000 says so (it used to name jansson's JSON_ALLOW_NUL flag), and
other JSON bodies with NUL no longer name the flag either; a users file
entry without password_hash names the file, line and section; an invalid
--listen address exits 2 before the audit trail or its keys are created."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import DEMO, Demo, check  # noqa: E402
from audit_e2e import call  # noqa: E402


def main():
    with Demo() as demo:
        for name in ("Bob", "bob smith", "x" * 33):
            status, _, body = call(demo, "POST", "/login", {"user": name, "password": "whatever1"})
            check(status == 400, "login as %r: expected 400, got %d" % (name, status))
            d = body["description"]
            check("invalid \"user\"" in d and "a-z" in d and "JSON object" not in d,
                  "login as %r: unclear error %r" % (name, d))
        status, _, body = call(demo, "POST", "/login", {"user": "bob"})
        check(status == 400 and "JSON object" in body["description"],
              "login without a password: %d %r" % (status, body))

        status, _, body = demo.request("POST", "/notes", body=b'{"text":"a\\u0000b"}',
                                       headers={"Content-Type": "application/json"})
        check(status == 400, "note with NUL: expected 400, got %d" % status)
        desc = json.loads(body)["description"]
        check(desc == "note text must not contain NUL (\\u0000)",
              "note with NUL: description %r" % desc)
        status, _, body = demo.request("POST", "/login", body=b'{"user":"a\\u0000","password":"x"}',
                                       headers={"Content-Type": "application/json"})
        check(status == 400 and b"JSON_ALLOW_NUL" not in body and b"NUL" in body,
              "login with NUL: %d %r" % (status, body))
        status, _, body = call(demo, "GET", "/notes")
        check(body == {"notes": []}, "a note was created: %r" % body)

    work = tempfile.mkdtemp(prefix="talon-e2e-")
    with open(os.path.join(work, "users.ini"), "w") as f:
        f.write("# users\n\n[user.ann]\nrole = user\n")
    with open(os.path.join(work, "talon.ini"), "w") as f:
        f.write("[demo.auth]\nusers = users.ini\n")
    r = subprocess.run([DEMO, "--config", "talon.ini", "--listen", "127.0.0.1:0"], cwd=work,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 1, "users file without password_hash: exit %d\n%s" % (r.returncode, out))
    check("users.ini:3: [user.ann]" in out and "password_hash" in out,
          "users file without password_hash: no file, line and section in:\n" + out)

    work = tempfile.mkdtemp(prefix="talon-e2e-")
    for spec in ("garbage", "127.0.0.1:99999", "[::1"):
        r = subprocess.run([DEMO, "--listen", spec], cwd=work, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        out = r.stdout.decode(errors="replace")
        check(r.returncode == 2, "--listen %s: exit %d, expected 2\n%s" % (spec, r.returncode, out))
        check("invalid listen address" in out, "--listen %s: unclear error:\n%s" % (spec, out))
    created = os.listdir(work)
    check(not os.path.exists(os.path.join(work, "var", "audit"))
          and not os.path.exists(os.path.join(work, "var", "audit-verify.key")),
          "an invalid --listen address created trail files: %s" % created)
    print("ok")


if __name__ == "__main__":
    main()
