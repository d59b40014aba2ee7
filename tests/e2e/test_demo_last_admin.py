#!/usr/bin/python3
"""The last admin cannot demote itself (409, audited as a failure), so the
demo never runs without an admin; with a second admin the same change
succeeds. --hash-password applies the API's password limit of 8 to 256
bytes: a longer password used to be hashed (or cut at 299 bytes and the
prefix hashed) while the API refused it."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import DEMO, Demo, check  # noqa: E402
from audit_e2e import call, expect_record, login  # noqa: E402


def roles(demo, token):
    status, _, body = call(demo, "GET", "/users", token=token)
    check(status == 200, "GET /users: %d %r" % (status, body))
    return {u["name"]: u["role"] for u in body["users"]}


def main():
    with Demo() as demo:
        alice = login(demo, "alice")
        status, _, body = call(demo, "PUT", "/users/alice/role", {"role": "user"}, token=alice,
                               headers={"X-Request-ID": "demote-last"})
        check(status == 409 and "last admin" in body["description"],
              "the last admin demoting itself: expected 409, got %d %r" % (status, body))
        r = expect_record(demo, "refused demotion", type="privilege_permissions_changed",
                          request_id="demote-last")
        check(r["outcome"] == "failure" and "last admin" in r["reason"],
              "refused demotion recorded as %r" % r)
        check(roles(demo, alice)["alice"] == "admin", "alice is no longer admin")

        status, _, _ = call(demo, "PUT", "/users/bob/role", {"role": "admin"}, token=alice)
        check(status == 200, "making bob admin: %d" % status)
        status, _, _ = call(demo, "PUT", "/users/alice/role", {"role": "user"}, token=alice)
        check(status == 200, "alice stepping down with bob admin: %d" % status)
        bob = login(demo, "bob")
        check(roles(demo, bob) == {"alice": "user", "bob": "admin", "carol": "auditor",
                                   "dave": "user"}, "roles after the hand-over")
        status, _, body = call(demo, "PUT", "/users/bob/role", {"role": "auditor"}, token=bob)
        check(status == 409 and "last admin" in body["description"],
              "the new last admin demoting itself: %d %r" % (status, body))
        status, _, body = call(demo, "DELETE", "/users/bob", token=bob)
        check(status == 409, "the last admin deleting itself: %d %r" % (status, body))
        check(roles(demo, bob)["bob"] == "admin", "bob is no longer admin")

    for size, want in ((100000, 2), (257, 2), (256, 0), (7, 2)):
        r = subprocess.run([DEMO, "--hash-password"], input=b"p" * size + b"\n",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        check(r.returncode == want, "--hash-password with %d bytes: exit %d, want %d; %s"
              % (size, r.returncode, want, r.stderr.decode()))
        if want == 0:
            check(r.stdout.startswith(b"$scrypt$"), "no hash printed: %r" % r.stdout)
        else:
            check(b"256" in r.stderr and r.stdout == b"",
                  "--hash-password with %d bytes: %r" % (size, r.stderr))
    print("ok")


if __name__ == "__main__":
    main()
