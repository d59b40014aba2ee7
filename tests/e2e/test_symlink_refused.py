#!/usr/bin/python3
"""talon-demo never writes through a symbolic link planted where a log or
audit file belongs: it exits with "refusing to open ... it is a symbolic
link" naming the path, and the file the link names keeps its mode and
bytes. Covered: var/log/app.log (live link), var/log/access.log (dangling
link, which used to say "No such file or directory"), var/audit/key.state,
the active trail file, and the verification key written at first start."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import DEMO, Demo, check  # noqa: E402

VICTIM_TEXT = b"root:x:0:0:root:/root:/bin/sh\n"


def victim(work):
    path = os.path.join(work, "victim.txt")
    with open(path, "wb") as f:
        f.write(VICTIM_TEXT)
    os.chmod(path, 0o644)
    return path


def check_untouched(path, what):
    with open(path, "rb") as f:
        data = f.read()
    check(data == VICTIM_TEXT, "%s: the link's target was written: %r" % (what, data))
    mode = os.stat(path).st_mode & 0o7777
    check(mode == 0o644, "%s: the link's target mode changed to %04o" % (what, mode))


def run_refused(work, what, expect):
    """Start the demo in work; it must exit non-zero with expect in its output."""
    r = subprocess.run([DEMO, "--listen", "127.0.0.1:0"], cwd=work, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode(errors="replace")
    check(r.returncode != 0, "%s: the demo started (exit %d):\n%s" % (what, r.returncode, out))
    check(expect in out, "%s: expected %r in the output:\n%s" % (what, expect, out))
    check("No such file or directory" not in out, "%s: misleading error:\n%s" % (what, out))


def fresh(prefix):
    work = tempfile.mkdtemp(prefix=prefix)
    os.makedirs(os.path.join(work, "var", "log"))
    return work


def main():
    dirs = []

    work = fresh("talon-e2e-link-")
    dirs.append(work)
    target = victim(work)
    os.symlink(target, os.path.join(work, "var", "log", "app.log"))
    run_refused(work, "app.log link", "refusing to open log file var/log/app.log: it is a "
                "symbolic link; point the configuration at the real file")
    check_untouched(target, "app.log link")

    work = fresh("talon-e2e-link-")
    dirs.append(work)
    os.symlink("gone/elsewhere.log", os.path.join(work, "var", "log", "access.log"))
    run_refused(work, "dangling access.log link",
                "refusing to open log file var/log/access.log: it is a symbolic link")
    check(not os.path.exists(os.path.join(work, "var", "log", "gone")),
          "dangling access.log link: the link's directory was created")

    work = fresh("talon-e2e-link-")
    dirs.append(work)
    target = victim(work)
    os.symlink(target, os.path.join(work, "var", "audit-verify.key"))
    run_refused(work, "verify key link", "refusing to write key file var/audit-verify.key: it "
                "is a symbolic link")
    check_untouched(target, "verify key link")

    # A trail made by a normal start, then links in place of its files.
    with Demo() as demo:
        work = demo.workdir
        demo.stop()
        saved = tempfile.mkdtemp(prefix="talon-e2e-trail-")
        dirs.append(saved)
        audit = os.path.join(work, "var", "audit")
        target = victim(saved)

        state = os.path.join(audit, "key.state")
        kept = os.path.join(saved, "key.state")
        shutil.move(state, kept)
        os.symlink(target, state)
        run_refused(work, "key.state link", "refusing to open audit key state file "
                    "var/audit/key.state: it is a symbolic link")
        check_untouched(target, "key.state link")
        os.unlink(state)
        shutil.move(kept, state)

        active = sorted(n for n in os.listdir(audit) if n.endswith(".jsonl"))[-1]
        path = os.path.join(audit, active)
        shutil.move(path, os.path.join(saved, active))
        os.symlink(target, path)
        run_refused(work, "trail file link", "refusing to open audit trail file "
                    "var/audit/%s: it is a symbolic link" % active)
        check_untouched(target, "trail file link")

    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
