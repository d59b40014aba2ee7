#!/usr/bin/python3
"""talon-demo users from a users file: a hash made by
`talon-demo --hash-password` (scrypt) and a PBKDF2-SHA256 hash made here
both log in; users not in the file do not; a bad file stops the demo
with the file and line."""
import base64
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import DEMO, Demo, check  # noqa: E402
from audit_e2e import call, expect_record, login  # noqa: E402


def b64(data):
    return base64.b64encode(data).decode().rstrip("=")


def pbkdf2_hash(password, iterations=100000):
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32)
    return "$pbkdf2-sha256$%d$%s$%s" % (iterations, b64(salt), b64(key))


def main():
    p = subprocess.run([DEMO, "--hash-password"], input=b"erin-passphrase-1\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(p.returncode == 0, "--hash-password failed: %s" % p.stderr.decode())
    scrypt_hash = p.stdout.decode().strip()
    check(scrypt_hash.startswith("$scrypt$ln=14,r=8,p=1$"), "unexpected hash %r" % scrypt_hash)
    check(b"erin-passphrase-1" not in p.stdout + p.stderr, "--hash-password printed the password")

    p = subprocess.run([DEMO, "--hash-password"], input=b"short\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    check(p.returncode == 2 and b"at least 8 bytes" in p.stderr,
          "a short password: expected exit 2 and a message, got %d %r"
          % (p.returncode, p.stderr))

    demo = Demo()
    users = demo.path("users.ini")
    with open(users, "w") as f:
        f.write("[user.erin]\nrole = admin\npassword_hash = %s\n\n"
                "[user.frank]\nrole = auditor\npassword_hash = %s\n"
                % (scrypt_hash, pbkdf2_hash("frank-passphrase-2")))
    demo.config = "[demo.auth]\nusers = %s\n" % users
    with demo:
        login(demo, "erin", "erin-passphrase-1")
        token = login(demo, "frank", "frank-passphrase-2")
        status, _, body = call(demo, "GET", "/audit?type=authn_login_success", token=token)
        check(status == 200 and body["count"] == 2, "frank (auditor) reads the trail: %d %r"
              % (status, body))
        status, _, _ = call(demo, "POST", "/login", {"user": "alice", "password": "alice-admin-demo"},
                            headers={"X-Request-ID": "alice-absent"})
        check(status == 401, "a user not in the file: expected 401, got %d" % status)
        r = expect_record(demo, "absent user", type="authn_login_fail", request_id="alice-absent")
        check(r["reason"] == "unknown user", "absent user: reason %r" % r["reason"])

    bad = Demo()
    path = bad.path("users.ini")
    with open(path, "w") as f:
        f.write("[user.gina]\nrole = superuser\npassword_hash = %s\n" % scrypt_hash)
    with open(bad.path("talon.ini"), "w") as f:
        f.write("[demo.auth]\nusers = %s\n" % path)
    p = subprocess.run([DEMO, "--listen", "127.0.0.1:0", "--config", bad.path("talon.ini")],
                       cwd=bad.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    message = p.stderr.decode()
    check(p.returncode != 0, "a bad users file: the demo started")
    check("users.ini:2" in message and "invalid role \"superuser\"" in message,
          "a bad users file: message without file, line and value: %r" % message)
    bad.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
