#!/usr/bin/python3
"""The trail directory removed under the running demo (rm -rf var/audit):
the first audited request after it gets 503 and an error in the app log,
the server restores the active file and key.state from its open files,
later requests succeed, every acknowledged note has its record, and the
restored trail verifies, with an audit_recovered record saying what
happened."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import call, check_verify, post_notes_until_acked, records  # noqa: E402


def post_note(demo, text):
    status, _, body = call(demo, "POST", "/notes", {"text": text},
                           headers={"X-Request-ID": text})
    return status, body


def main():
    with Demo() as demo:
        acked = []
        for i in range(3):
            status, _ = post_note(demo, "before-%d" % i)
            check(status == 201, "note before the removal: status %d" % status)
            acked.append("before-%d" % i)

        shutil.rmtree(demo.path("var", "audit"))
        status, body = post_note(demo, "at-removal")
        check(status == 503, "first note after rm -rf var/audit: expected 503, got %d %r"
              % (status, body))

        acked.append(post_notes_until_acked(demo, "after"))
        check(demo.stop() == 0, "talon-demo did not exit cleanly")

        with open(demo.path("var", "log", "app.log")) as f:
            app_log = f.read()
        check("removed while open" in app_log, "no error about the removal in app.log")
        check("restored the removed file" in app_log, "no line about the restore in app.log")
        for name in ("key.state", "audit-00000001.jsonl"):
            path = demo.path("var", "audit", name)
            check(os.path.exists(path), "%s was not restored" % name)
            check(os.stat(path).st_mode & 0o777 == 0o600, "%s mode is not 0600" % name)

        recs = records(demo)
        recovered = [r for r in recs if r["type"] == "audit_recovered"]
        check(len(recovered) == 1, "expected one audit_recovered record, got %d" % len(recovered))
        check(recovered[0]["data"]["cause"] == "file_removed", "cause: %r" % recovered[0]["data"])
        check(recovered[0]["data"]["key_state_recreated"] is True, "key state not recreated")
        ids = {r["request"]["id"] for r in recs if r["type"] == "note_created" and r["request"]}
        for text in acked:
            check(text in ids, "acknowledged note %s has no note_created record" % text)
        check("at-removal" not in ids, "the rejected note has a note_created record")
        check(recs[-1]["type"] == "audit_epoch_sealed", "the trail does not end with the seal")
        check_verify(demo)
    print("ok")


if __name__ == "__main__":
    main()
