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
from audit_e2e import (check_recovered_trail, check_restored_files, check_verify,  # noqa: E402
                       post_note, records, reject_then_recover)


def main():
    with Demo() as demo:
        acked = []
        for i in range(3):
            status, _ = post_note(demo, "before-%d" % i)
            check(status == 201, "note before the removal: status %d" % status)
            acked.append("before-%d" % i)

        shutil.rmtree(demo.path("var", "audit"))
        after, app_log = reject_then_recover(demo, "at-removal")
        acked.append(after)

        check("removed while open" in app_log, "no error about the removal in app.log")
        check("restored the removed file" in app_log, "no line about the restore in app.log")
        check_restored_files(demo.path("var", "audit"), ("key.state", "audit-00000001.jsonl"))
        recs = records(demo)
        check_recovered_trail(recs, "file_removed", acked, "at-removal")
        check(recs[-1]["type"] == "audit_epoch_sealed", "the trail does not end with the seal")
        check_verify(demo)
    print("ok")


if __name__ == "__main__":
    main()
