#!/usr/bin/python3
"""talon-demo started with trail files but no key state creates no keys and
exits 1. Its error names the missing key state, the trail and docs/audit.md,
both when the verification key is gone too and when it is still there. The
trail stays unchanged and the app log has the error. Once the trail is moved
aside, the next start creates new keys."""
import hashlib
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import DEMO, Demo, check  # noqa: E402

STATE = os.path.join("var", "audit", "key.state")
VERIFY_KEY = os.path.join("var", "audit-verify.key")


def trail_digests(work):
    audit = os.path.join(work, "var", "audit")
    digests = {}
    for name in sorted(os.listdir(audit)):
        with open(os.path.join(audit, name), "rb") as f:
            digests[name] = hashlib.sha256(f.read()).hexdigest()
    return digests


def start_without_state(work, keep_verify_key):
    os.unlink(os.path.join(work, STATE))
    if not keep_verify_key:
        os.unlink(os.path.join(work, VERIFY_KEY))
    before = trail_digests(work)
    r = subprocess.run([DEMO, "--listen", "127.0.0.1:0"], cwd=work, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode(errors="replace")
    case = "verification key kept" if keep_verify_key else "verification key removed"
    check(r.returncode == 1, "%s: exit %d, expected 1\n%s" % (case, r.returncode, out))
    check("the audit key state var/audit/key.state is missing" in out,
          "%s: the error does not name the missing key state:\n%s" % (case, out))
    check("var/audit contains 1 trail file(s)" in out,
          "%s: the error does not name the trail:\n%s" % (case, out))
    check("docs/audit.md, section Lost key state" in out,
          "%s: the error does not point to docs/audit.md:\n%s" % (case, out))
    check("first start" not in out, "%s: the output claims a first start:\n%s" % (case, out))
    check(("verification key var/audit-verify.key" in out) == keep_verify_key,
          "%s: the error names the verification key wrongly:\n%s" % (case, out))
    check(not os.path.exists(os.path.join(work, STATE)),
          "%s: a new key state was created" % case)
    check(os.path.exists(os.path.join(work, VERIFY_KEY)) == keep_verify_key,
          "%s: the verification key was created or removed" % case)
    check(trail_digests(work) == before, "%s: the trail files changed" % case)
    with open(os.path.join(work, "var", "log", "app.log"), errors="replace") as f:
        app_log = f.read()
    check("ERROR app talon-demo cannot start: the audit key state" in app_log,
          "%s: the app log has no line for the error:\n%s" % (case, app_log))


def main():
    demo = Demo()
    work = demo.workdir
    try:
        demo.start()
        status, _, _ = demo.request("GET", "/notes")
        check(status == 200, "GET /notes: %d" % status)
        demo.stop()

        with open(os.path.join(work, STATE), "rb") as f:
            state = f.read()
        start_without_state(work, keep_verify_key=True)
        with open(os.path.join(work, STATE), "wb") as f:
            f.write(state)
        os.chmod(os.path.join(work, STATE), 0o600)
        start_without_state(work, keep_verify_key=False)

        shutil.move(os.path.join(work, "var", "audit"), os.path.join(work, "var", "closed"))
        demo.start()
        check("created the audit trail keys at first start" in demo.read_stderr(),
              "after the trail was moved aside, no new keys were created")
        check(os.path.exists(os.path.join(work, STATE)), "no new key state after the move")
        demo.stop()
    finally:
        demo.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
