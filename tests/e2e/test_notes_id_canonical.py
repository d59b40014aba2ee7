#!/usr/bin/python3
"""Note ids are compared as integers, never as text: /notes/{id:int} also
matches /notes/004, and dave must not be able to change or delete bob's note
4 through /notes/004, /notes/04 or /notes/+4. Every record names the note in
canonical form (note:4), so `talon audit query --target note:4` finds them.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import CLI, Demo, check  # noqa: E402
from audit_e2e import call, find, login, trail_dir  # noqa: E402


def main():
    with Demo() as demo:
        bob, dave = login(demo, "bob"), login(demo, "dave")
        nid = None
        while nid is None or nid < 4:
            status, _, body = call(demo, "POST", "/notes", {"text": "bob's"}, token=bob)
            check(status == 201, "bob creates a note: %d %r" % (status, body))
            nid = body["id"]
        check(nid == 4, "expected note 4, got %r" % nid)

        for i, alias in enumerate(("004", "04", "+4")):
            for method in ("PUT", "DELETE"):
                rid = "alias-%d-%s" % (i, method)
                body = {"text": "dave was here"} if method == "PUT" else None
                status, _, reply = call(demo, method, "/notes/" + alias, body, token=dave,
                                        headers={"X-Request-ID": rid})
                what = "%s /notes/%s as dave" % (method, alias)
                if alias.startswith("+"):
                    # {id:int} takes an optional '-' and digits only.
                    check(status == 404, "%s: expected 404, got %d %r" % (what, status, reply))
                    continue
                check(status == 403, "%s: expected 403, got %d %r" % (what, status, reply))
                found = find(demo, type="authz_fail", request_id=rid)
                check(found, "%s: no authz_fail record" % what)
                check(found[-1]["target"] == {"type": "note", "id": "4"},
                      "%s: target %r, expected note:4" % (what, found[-1]["target"]))

        status, _, body = call(demo, "GET", "/notes/4")
        check(status == 200 and body["text"] == "bob's", "note 4 changed: %d %r" % (status, body))

        # The owner through an alias: the change is recorded as note:4.
        status, _, reply = call(demo, "PUT", "/notes/0004", {"text": "bob again"}, token=bob,
                                headers={"X-Request-ID": "owner-put"})
        check(status == 200, "PUT /notes/0004 as bob: %d %r" % (status, reply))
        found = find(demo, type="note_updated", request_id="owner-put")
        check(found and found[-1]["target"]["id"] == "4",
              "PUT /notes/0004: record %r, expected target note:4" % found)
        status, _, reply = call(demo, "DELETE", "/notes/04", token=bob,
                                headers={"X-Request-ID": "owner-delete"})
        check(status == 204, "DELETE /notes/04 as bob: %d %r" % (status, reply))
        found = find(demo, type="note_deleted", request_id="owner-delete")
        check(found and found[-1]["target"]["id"] == "4",
              "DELETE /notes/04: record %r, expected target note:4" % found)

        # A 404 through an alias also names the canonical id.
        status, _, reply = call(demo, "DELETE", "/notes/004", token=bob,
                                headers={"X-Request-ID": "gone-delete"})
        check(status == 404, "DELETE /notes/004 after delete: %d %r" % (status, reply))
        found = find(demo, type="note_deleted", request_id="gone-delete")
        check(found and found[-1]["target"]["id"] == "4",
              "failed DELETE /notes/004: record %r, expected target note:4" % found)
        demo.stop()

        p = subprocess.run([CLI, "audit", "query", "--target", "note:4", trail_dir(demo)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode(errors="replace")
        check(p.returncode == 0, "talon audit query --target note:4: exit %d\n%s"
              % (p.returncode, out))
        for rid in ("alias-0-PUT", "alias-1-DELETE", "owner-put", "owner-delete", "gone-delete"):
            check(rid in out, "talon audit query --target note:4 misses %s:\n%s" % (rid, out))
        check("note:004" not in out and '"004"' not in out,
              "a record names the raw id 004:\n%s" % out)
    print("ok")


if __name__ == "__main__":
    main()
