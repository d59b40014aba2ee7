#!/usr/bin/python3
"""The trail directory moved away under the running demo (mv var/audit
var/audit.old). The moved files keep their links, so the server finds the
move by comparing the configured paths with its open files. The first
audited request after the move gets 503 and an error in the app log. The
server recreates the active file and key.state at the configured path,
and later requests succeed. The moved key.state no longer contains a key.

Continuity, as for a removed directory: the new var/audit starts at the
active file, so verify needs --partial there. The trail files left in the
moved directory followed by var/audit verify as one intact trail, and
every acknowledged note has its record in it."""
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import CLI, Demo, check  # noqa: E402
from audit_e2e import (check_recovered_trail, check_restored_files, post_note,  # noqa: E402
                       reject_then_recover)

CONFIG = """
[log.app]
file = var/log/app.log
[audit]
rotate_size = 4k
"""


def talon(*args):
    p = subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace")


def trail_files(directory):
    return sorted(glob.glob(os.path.join(directory, "audit-*.jsonl")))


def read_records(paths):
    out = []
    for path in paths:
        with open(path, "rb") as f:
            out += [json.loads(line) for line in f.read().split(b"\n")[:-1]]
    return out


def main():
    with Demo(config=CONFIG) as demo:
        trail = demo.path("var", "audit")
        moved = demo.path("var", "audit.old")
        key = demo.path("var", "audit-verify.key")
        acked = []
        for i in range(40):
            status, _ = post_note(demo, "before-%d" % i)
            check(status == 201, "note before the move: status %d" % status)
            acked.append("before-%d" % i)
            if len(trail_files(trail)) >= 2:
                break
        check(len(trail_files(trail)) >= 2, "the trail did not rotate at 4k: %s" % trail_files(trail))
        active = os.path.basename(trail_files(trail)[-1])

        os.rename(trail, moved)
        after, app_log = reject_then_recover(demo, "at-move")
        acked.append(after)

        check("was moved or replaced while open; the open file is now %s/%s" % (moved, active)
              in app_log, "no error naming where the active file went in app.log:\n%s" % app_log)
        check("restored the moved file" in app_log, "no line about the restore in app.log")
        check_restored_files(trail, ("key.state", active))
        check([os.path.basename(p) for p in trail_files(trail)] == [active],
              "var/audit holds %s, expected only the active file %s" % (trail_files(trail), active))
        with open(os.path.join(moved, "key.state")) as f:
            moved_state = f.read()
        check("key=" not in moved_state, "the moved key.state still holds a key: %r" % moved_state[:40])

        old_files = [p for p in trail_files(moved) if os.path.basename(p) < active]
        recs = read_records(old_files + trail_files(trail))
        check_recovered_trail(recs, "file_moved", acked, "at-move")

        rc, out = talon("audit", "verify", "--key", key, trail)
        check(rc == 1 and "incomplete" in out, "verify of the recreated trail alone: exit %d, "
              "expected 1 (incomplete)\n%s" % (rc, out))
        rc, out = talon("audit", "verify", "--key", key, "--partial", trail)
        check(rc == 0, "verify --partial of the recreated trail: exit %d\n%s" % (rc, out))
        rc, out = talon("audit", "verify", "--key", key, *(old_files + [trail]))
        check(rc == 0, "verify of the moved older files and the recreated trail: exit %d\n%s"
              % (rc, out))
    print("ok")


if __name__ == "__main__":
    main()
