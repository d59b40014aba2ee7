#!/usr/bin/python3
"""The audited demo records every PCI DSS 10.2 event class: logins and
their failures, 401/403 as authz_fail, user and role changes, reads of the
trail (auditor only), object create/delete, data access, start and stop;
and the trail verifies after a clean stop."""
import json
import sys
import urllib.parse

sys.path.insert(0, __import__("os").path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import (call, check_complete, check_verify, expect_record, find,  # noqa: E402
                       login, records)


def test_logins(demo):
    token = login(demo, "bob", headers={"X-Request-ID": "login-ok-1"})
    r = expect_record(demo, "login success", type="authn_login_success",
                      request_id="login-ok-1")
    check(r["actor"]["id"] == "bob", "login success: actor is %r" % r["actor"])
    check(r["actor"]["roles"] == ["user"], "login success: roles are %r" % r["actor"]["roles"])
    check(r["target"] == {"type": "user", "id": "bob"}, "login success: target %r" % r["target"])
    check_complete(r, "login success")

    status, _, _ = call(demo, "POST", "/login", {"user": "bob", "password": "not-bobs"},
                        headers={"X-Request-ID": "login-bad-1"})
    check(status == 401, "wrong password: expected 401, got %d" % status)
    r = expect_record(demo, "wrong password", type="authn_login_fail", request_id="login-bad-1")
    check(r["outcome"] == "failure", "wrong password: outcome %r" % r["outcome"])
    check(r["reason"] == "wrong password", "wrong password: reason %r" % r["reason"])
    check(r["actor"]["id"] == "anonymous", "wrong password: actor %r" % r["actor"])
    check(r["target"]["id"] == "bob", "wrong password: target %r" % r["target"])
    check_complete(r, "wrong password")

    status, _, _ = call(demo, "POST", "/login", {"user": "mallory", "password": "whatever1"},
                        headers={"X-Request-ID": "login-bad-2"})
    check(status == 401, "unknown user: expected 401, got %d" % status)
    r = expect_record(demo, "unknown user", type="authn_login_fail", request_id="login-bad-2")
    check(r["reason"] == "unknown user", "unknown user: reason %r" % r["reason"])

    status, _, _ = call(demo, "POST", "/logout", token=token,
                        headers={"X-Request-ID": "logout-1"})
    check(status == 204, "logout: expected 204, got %d" % status)
    expect_record(demo, "logout", type="authn_token_revoked", request_id="logout-1", actor="bob")
    status, _, _ = call(demo, "GET", "/users", token=token, headers={"X-Request-ID": "stale-1"})
    check(status == 401, "token after logout: expected 401, got %d" % status)
    r = expect_record(demo, "revoked token", type="authz_fail", request_id="stale-1")
    check(r["outcome"] == "failure", "revoked token: outcome %r" % r["outcome"])


def test_denied(demo):
    status, headers, _ = call(demo, "GET", "/users", headers={"X-Request-ID": "anon-users"})
    check(status == 401, "anonymous GET /users: expected 401, got %d" % status)
    check("www-authenticate" in headers, "401 without WWW-Authenticate")
    r = expect_record(demo, "anonymous GET /users", type="authz_fail", request_id="anon-users")
    check(r["actor"]["id"] == "anonymous", "anonymous: actor %r" % r["actor"])
    check_complete(r, "401")

    bob = login(demo, "bob")
    status, _, _ = call(demo, "DELETE", "/users/dave", token=bob,
                        headers={"X-Request-ID": "bob-deletes"})
    check(status == 403, "user deleting a user: expected 403, got %d" % status)
    r = expect_record(demo, "403", type="authz_fail", request_id="bob-deletes")
    check(r["actor"]["id"] == "bob", "403: actor %r" % r["actor"])
    check(r["target"] == {"type": "user", "id": "dave"}, "403: target %r" % r["target"])
    check(r["reason"] == "role admin required", "403: reason %r" % r["reason"])
    check_complete(r, "403")

    status, _, _ = call(demo, "GET", "/audit", token=bob, headers={"X-Request-ID": "bob-audit"})
    check(status == 403, "user reading the trail: expected 403, got %d" % status)
    r = expect_record(demo, "trail read denied", type="authz_fail", request_id="bob-audit")
    check(r["target"]["type"] == "audit_trail", "trail read denied: target %r" % r["target"])


def test_user_admin(demo):
    alice = login(demo, "alice")
    steps = [
        ("POST", "/users", {"name": "erin", "password": "erin-secret-pw", "role": "user"},
         201, "user_created"),
        ("PUT", "/users/erin/role", {"role": "auditor"}, 200, "privilege_permissions_changed"),
        ("PUT", "/users/erin", {"password": "erin-other-pw"}, 204, "user_updated"),
        ("DELETE", "/users/erin", None, 204, "user_deleted"),
    ]
    for i, (method, target, body, want, event) in enumerate(steps):
        rid = "admin-%d" % i
        status, _, got = call(demo, method, target, body, token=alice,
                              headers={"X-Request-ID": rid})
        check(status == want, "%s %s: expected %d, got %d %r" % (method, target, want, status, got))
        r = expect_record(demo, event, type=event, request_id=rid)
        check(r["actor"]["id"] == "alice", "%s: actor %r" % (event, r["actor"]))
        check(r["target"] == {"type": "user", "id": "erin"}, "%s: target %r" % (event, r["target"]))
        check(r["outcome"] == "success", "%s: outcome %r" % (event, r["outcome"]))
        check_complete(r, event)
    r = find(demo, type="privilege_permissions_changed", request_id="admin-1")[-1]
    check(r["data"] == {"from": "user", "to": "auditor"}, "role change data %r" % r["data"])

    status, _, _ = call(demo, "DELETE", "/users/nobody", token=alice,
                        headers={"X-Request-ID": "admin-missing"})
    check(status == 404, "deleting a missing user: expected 404, got %d" % status)
    r = expect_record(demo, "failed delete", type="user_deleted", request_id="admin-missing")
    check(r["outcome"] == "failure", "failed delete: outcome %r" % r["outcome"])

    # The automatic per-request record of POST /users keeps the body, redacted.
    r = expect_record(demo, "http_request of POST /users", type="http_request",
                      request_id="admin-0")
    body = r["data"]["request"]["body"]
    check(body["name"] == "erin", "request body name %r" % body)
    check(body["password"] == "[REDACTED]", "request body password %r" % body)


def test_notes(demo):
    bob = login(demo, "bob")
    dave = login(demo, "dave")
    alice = login(demo, "alice")
    status, _, note = call(demo, "POST", "/notes", {"text": "bob's note"}, token=bob,
                           headers={"X-Request-ID": "note-create"})
    check(status == 201, "POST /notes: expected 201, got %d %r" % (status, note))
    nid = str(note["id"])
    r = expect_record(demo, "note_created", type="note_created", request_id="note-create")
    check(r["target"] == {"type": "note", "id": nid}, "note_created target %r" % r["target"])
    check(r["actor"]["id"] == "bob", "note_created actor %r" % r["actor"])

    status, _, _ = call(demo, "GET", "/notes/" + nid, token=dave,
                        headers={"X-Request-ID": "note-read"})
    check(status == 200, "GET note: expected 200, got %d" % status)
    r = expect_record(demo, "data access", type="http_request", request_id="note-read")
    check(r["target"]["type"] == "note", "data access target %r" % r["target"])
    check(r["actor"]["id"] == "dave", "data access actor %r" % r["actor"])
    check_complete(r, "data access")

    status, _, _ = call(demo, "DELETE", "/notes/" + nid, token=dave,
                        headers={"X-Request-ID": "note-steal"})
    check(status == 403, "deleting another user's note: expected 403, got %d" % status)
    expect_record(demo, "note 403", type="authz_fail", request_id="note-steal", actor="dave")

    status, _, _ = call(demo, "DELETE", "/notes/" + nid, token=alice,
                        headers={"X-Request-ID": "note-admin-delete"})
    check(status == 204, "admin deleting a note: expected 204, got %d" % status)
    r = expect_record(demo, "note_deleted", type="note_deleted", request_id="note-admin-delete")
    check(r["target"] == {"type": "note", "id": nid}, "note_deleted target %r" % r["target"])


def test_audit_read(demo):
    carol = login(demo, "carol")
    query = urllib.parse.urlencode({"type": "authn_login_fail", "actor": "anonymous",
                                    "outcome": "failure", "limit": "50"})
    status, _, body = call(demo, "GET", "/audit?" + query, token=carol,
                           headers={"X-Request-ID": "carol-reads"})
    check(status == 200, "auditor GET /audit: expected 200, got %d %r" % (status, body))
    check(body["count"] == len(body["records"]) and body["count"] >= 2,
          "GET /audit returned %r" % body)
    for rec in body["records"]:
        check(rec["type"] == "authn_login_fail", "filter type ignored: %r" % rec["type"])
    r = expect_record(demo, "audit_read", type="audit_read", request_id="carol-reads")
    check(r["actor"]["id"] == "carol", "audit_read actor %r" % r["actor"])
    check(r["data"]["filters"]["type"] == "authn_login_fail", "audit_read data %r" % r["data"])
    check(r["data"]["returned"] == body["count"], "audit_read returned %r" % r["data"])
    check_complete(r, "audit_read")

    status, _, body = call(demo, "GET", "/audit?request_id=carol-reads", token=carol)
    check(status == 200 and body["count"] >= 1, "the read itself is queryable: %r" % body)

    status, _, body = call(demo, "GET", "/audit?since=yesterday-ish", token=carol,
                           headers={"X-Request-ID": "carol-bad-filter"})
    check(status == 400, "invalid since: expected 400, got %d %r" % (status, body))
    r = expect_record(demo, "bad filter", type="audit_read", request_id="carol-bad-filter")
    check(r["outcome"] == "failure", "bad filter outcome %r" % r["outcome"])


def main():
    with Demo() as demo:
        expect_record(demo, "start", type="sys_startup")
        test_logins(demo)
        test_denied(demo)
        test_user_admin(demo)
        test_notes(demo)
        test_audit_read(demo)
        check_verify(demo, open_trail=True)
        code = demo.stop()
        check(code == 0, "talon-demo exited with %d" % code)
        all_records = records(demo, settle=0)
        check(all_records[-1]["type"] == "audit_epoch_sealed",
              "the trail does not end with a seal after a clean stop: %r" % all_records[-1]["type"])
        check(any(r["type"] == "sys_shutdown" for r in all_records), "no sys_shutdown record")
        for r in all_records:
            check(r["source"] is not None or r["actor"]["id"] == "system",
                  "a request record without a source: %s" % json.dumps(r))
        check_verify(demo)
    print("ok")


if __name__ == "__main__":
    main()
