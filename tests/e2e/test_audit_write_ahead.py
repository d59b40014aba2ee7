#!/usr/bin/python3
"""Write-ahead under fail_closed: a change is applied only once its audit
record is durable, so a 503 from the audit trail means that nothing
changed. The test mounts a 1 MiB tmpfs for the trail (it needs root) and
fills it. The failure it guards against: a POST /notes whose record fails
on its way to disk gets 503 "not completed", yet the note exists (without
its note_created record), and the client's retry makes a duplicate.

Cycle 1: notes are posted until one gets 503; after space returns, no note
answered 503 exists, every note answered 201 exists once, and a retry of
the refused note creates it exactly once. Cycle 2: role changes are made
until one gets 503; afterwards the role is the last one acknowledged.
Cycle 3: logouts are made until one gets 503; afterwards every token whose
logout was acknowledged is rejected and the refused one still works."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import (call, check_verify, fill, login, mount_trail_tmpfs,  # noqa: E402
                       records, unmount_trail_tmpfs)


def wait_writable(demo, token, tag):
    """Post notes until one is acknowledged again; returns its text."""
    deadline = time.time() + 15
    n = 0
    while True:
        text = "recovered-%s-%d" % (tag, n)
        status, _, _ = call(demo, "POST", "/notes", {"text": text}, token=token)
        if status == 201:
            return text
        check(status == 503, "after space returned: expected 201 or 503, got %d" % status)
        check(time.time() < deadline, "requests still fail 15 s after space returned")
        n += 1
        time.sleep(0.2)


def note_texts(demo):
    status, _, body = call(demo, "GET", "/notes")
    check(status == 200, "GET /notes: %d" % status)
    return [n["text"] for n in body["notes"]]


def main():
    demo = Demo(config="[log.app]\nfile = -\nlevel = info\n")
    trail = mount_trail_tmpfs(demo)
    try:
        demo.start()
        bob = login(demo, "bob")
        alice = login(demo, "alice")
        filler = os.path.join(trail, "filler")

        # Cycle 1: notes.
        fill(filler)
        acked, refused = [], []
        for i in range(60):
            text = "note-%d" % i
            status, _, body = call(demo, "POST", "/notes", {"text": text}, token=bob,
                                   headers={"X-Request-ID": "wa-%d" % i})
            check(status in (201, 503), "POST /notes while full: %d %r" % (status, body))
            (acked if status == 201 else refused).append(text)
            if status == 503:
                check("not completed" in body["description"], "503 body: %r" % body)
                break
        check(refused, "no 503 within 60 notes on a full trail")
        os.unlink(filler)
        acked.append(wait_writable(demo, bob, "a"))

        texts = note_texts(demo)
        for t in refused:
            check(t not in texts, "note %r was answered 503 but exists: %r" % (t, texts))
        for t in acked:
            check(texts.count(t) == 1, "note %r was answered 201 but appears %d times"
                  % (t, texts.count(t)))
        status, _, _ = call(demo, "POST", "/notes", {"text": refused[0]}, token=bob)
        check(status == 201, "retry of the refused note: %d" % status)
        check(note_texts(demo).count(refused[0]) == 1, "the retried note is not there once")
        # Every note that exists has its durable note_created record.
        status, _, body = call(demo, "GET", "/notes")
        ids = {str(n["id"]) for n in body["notes"]}
        recorded = {r["target"]["id"] for r in records(demo)
                    if r["type"] == "note_created" and r["outcome"] == "success"}
        check(ids <= recorded, "notes without a note_created record: %r" % sorted(ids - recorded))

        # Cycle 2: role changes, dave between user and admin, until one
        # gets 503 (the trail's last page may still take a few records).
        fill(filler)
        expected, refused = "user", None
        for i in range(60):
            want = "admin" if i % 2 == 0 else "user"
            status, _, body = call(demo, "PUT", "/users/dave/role", {"role": want}, token=alice)
            check(status in (200, 503), "role change while full: %d %r" % (status, body))
            if status == 503:
                refused = want
                break
            expected = want
        check(refused is not None, "no 503 within 60 role changes on a full trail")
        os.unlink(filler)
        wait_writable(demo, bob, "b")
        status, _, body = call(demo, "GET", "/users", token=alice)
        check(status == 200, "GET /users: %d %r" % (status, body))
        roles = {u["name"]: u["role"] for u in body["users"]}
        check(roles.get("dave") == expected,
              "dave is %r after a role change to %r was answered 503 (expected %r)"
              % (roles.get("dave"), refused, expected))

        # Cycle 3: logouts, each of its own session of bob.
        sessions = [login(demo, "bob") for _ in range(40)]
        fill(filler)
        logged_out, refused_token = [], None
        for n, token in enumerate(sessions):
            status, _, body = call(demo, "POST", "/logout", token=token,
                                   headers={"X-Request-ID": "logout-%d" % n})
            check(status in (204, 503), "logout while full: %d %r" % (status, body))
            if status == 503:
                refused_token = token
                break
            logged_out.append(token)
        check(refused_token is not None, "no 503 within %d logouts on a full trail" % len(sessions))
        os.unlink(filler)
        wait_writable(demo, bob, "c")
        for token in logged_out:
            status, _, _ = call(demo, "POST", "/notes", {"text": "after logout"}, token=token)
            check(status == 401, "a token whose logout got 204 still works: %d" % status)
        status, _, body = call(demo, "POST", "/notes", {"text": "kept session"}, token=refused_token)
        check(status == 201, "the token whose logout got 503 no longer works: %d %r"
              % (status, body))
        # The refused logout may still have its authn_token_revoked record
        # when the request's later http_request record was the one that
        # failed (a documented NOTE in docs/audit.md), so only the
        # acknowledged ones are counted.
        revoked = {r["request"]["id"] for r in records(demo) if r["type"] == "authn_token_revoked"}
        for n in range(len(logged_out)):
            check("logout-%d" % n in revoked,
                  "acknowledged logout logout-%d has no authn_token_revoked record" % n)

        check_verify(demo, open_trail=True)
        rc = demo.stop()
        check(rc == 0, "talon-demo exited with %r" % rc)
    finally:
        unmount_trail_tmpfs(demo, trail)
    print("ok")


if __name__ == "__main__":
    main()
