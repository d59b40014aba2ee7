#!/usr/bin/python3
"""talon audit tail -f while the trail directory is moved away or removed
under the running demo, which then recreates the active file at the
configured path (audit_recovered, cause file_moved or file_removed).

tail -f must notice that the path names a new file, say so in one line on
stderr, and go on in the new file. Every record of the trail after the
tail started is printed exactly once, including the audit_recovered record
and the notes after the recovery."""
import glob
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import CLI, Demo, check  # noqa: E402
from audit_e2e import post_note, post_notes_until_acked, stop_cleanly  # noqa: E402


def trail_lines(directories):
    """The record lines of the trail files in directories, in order, by seq."""
    out = {}
    for d in directories:
        for path in sorted(glob.glob(os.path.join(d, "audit-*.jsonl"))):
            with open(path, "rb") as f:
                for line in f.read().split(b"\n")[:-1]:
                    out[json.loads(line)["seq"]] = line
    return out


def read_until(tail, want_seq, timeout=15):
    """Read tail's stdout until it printed the record with seq want_seq or
    timeout seconds passed; returns the lines printed."""
    lines = []
    buf = b""
    deadline = time.time() + timeout
    os.set_blocking(tail.stdout.fileno(), False)
    while time.time() < deadline:
        chunk = tail.stdout.read()
        if chunk:
            buf += chunk
            *done, buf = buf.split(b"\n")
            lines += done
            if lines and json.loads(lines[-1])["seq"] >= want_seq:
                break
        else:
            time.sleep(0.05)
    return lines


def follow_through(how):
    with Demo() as demo:
        trail = demo.path("var", "audit")
        moved = demo.path("var", "audit.moved")
        for i in range(3):
            status, _ = post_note(demo, "before-%d" % i)
            check(status == 201, "%s: note before: status %d" % (how, status))
        time.sleep(0.3)
        first_unseen = max(trail_lines([trail])) + 1

        tail = subprocess.Popen([CLI, "audit", "tail", "-n", "0", "-f", trail],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(0.5)  # let tail reach the end of the active file
            for i in range(3):
                status, _ = post_note(demo, "watched-%d" % i)
                check(status == 201, "%s: note while tail runs: status %d" % (how, status))
            time.sleep(0.5)
            if how == "moved":
                os.rename(trail, moved)
            else:
                shutil.rmtree(trail)
            status, _ = post_note(demo, "at-%s" % how)
            check(status == 503, "%s: first note after the %s: status %d, expected 503" % (how, how, status))
            post_notes_until_acked(demo, "recovering")
            for i in range(5):
                status, _ = post_note(demo, "after-%d" % i)
                check(status == 201, "%s: note after the recovery: status %d" % (how, status))
            stop_cleanly(demo)

            dirs = [moved, trail] if how == "moved" else [trail]
            want = trail_lines(dirs)
            last = max(want)
            printed = read_until(tail, last)
        finally:
            tail.kill()
            _, err = tail.communicate()
        err = err.decode(errors="replace")

        # A record of the rejected note may be printed and then cut from the
        # moved file before the restore, and tail then reports "file shrank".
        kept = [line for line in printed if want.get(json.loads(line)["seq"]) == line]
        check(len(kept) == len(printed) or "file shrank" in err,
              "%s: tail printed records that are not in the trail, without a word on stderr:\n%s"
              % (how, [line for line in printed if line not in kept]))
        seqs = [json.loads(line)["seq"] for line in kept]
        check(seqs == list(range(first_unseen, last + 1)),
              "%s: tail -f printed seqs %s, expected %d..%d each once" % (how, seqs, first_unseen, last))
        types = [json.loads(line)["type"] for line in kept]
        check("audit_recovered" in types, "%s: tail -f did not print the audit_recovered record" % how)
        replaced = [line for line in err.splitlines() if "replaced" in line]
        check(len(replaced) == 1, "%s: expected one stderr line about the replaced file, got:\n%s" % (how, err))
        check("audit-00000001.jsonl" in replaced[0],
              "%s: the stderr line does not name the file: %r" % (how, replaced[0]))


def gone_path_reported():
    """While the followed path names no file, tail reports it once on stderr."""
    with Demo() as demo:
        status, _ = post_note(demo, "before")
        check(status == 201, "gone: note before: status %d" % status)
        stop_cleanly(demo)
        trail = demo.path("var", "audit")
        moved = demo.path("var", "audit.away")
        tail = subprocess.Popen([CLI, "audit", "tail", "-n", "0", "-f", trail],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(0.5)
            os.rename(trail, moved)
            time.sleep(1.5)  # several follow intervals with the path gone
            os.rename(moved, trail)
            time.sleep(0.5)
        finally:
            tail.kill()
            _, err = tail.communicate()
        gone = [line for line in err.decode(errors="replace").splitlines() if "is gone" in line]
        check(len(gone) == 1, "gone: expected one stderr line about the missing file, got %r" % gone)


def main():
    gone_path_reported()
    follow_through("moved")
    follow_through("removed")
    print("ok")


if __name__ == "__main__":
    main()
