#!/usr/bin/python3
"""verify --open on a live trail whose last file ends with bytes that are no
complete record (a torn write, or zeros from truncate -s +1M): the trail
passes, and both outputs name the bytes left out."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ref as ref  # noqa: E402
from talon_e2e import CLI, check, fail  # noqa: E402


def talon(*args):
    p = subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def main():
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    tmp = tempfile.mkdtemp(prefix="talon-torn-tail-")
    try:
        key, state = os.path.join(tmp, "verify.key"), os.path.join(tmp, "key.state")
        ref.keygen(key, state)
        trail = os.path.join(tmp, "trail")
        w = ref.Writer(trail, state)
        w.record("sys_startup", actor=("system", []))
        ref.demo_records(w, 20)
        w.close(seal=False)
        path = os.path.join(trail, "audit-00000001.jsonl")

        # A complete trail: no note, torn_bytes 0.
        rc, out, err = talon("audit", "verify", "--key", key, "--open", trail)
        check(rc == 0, "verify --open: exit %d\n%s%s" % (rc, out, err))
        check("torn tail" not in out, "note without a torn tail:\n%s" % out)
        rc, out, _ = talon("audit", "verify", "--key", key, "--open", "--format", "json", trail)
        check(json.loads(out)["torn_bytes"] == 0, "json torn_bytes: %s" % out)

        size = os.path.getsize(path)
        os.truncate(path, size + (1 << 20))
        rc, out, err = talon("audit", "verify", "--key", key, "--open", trail)
        check(rc == 0, "verify --open with a torn tail: exit %d\n%s%s" % (rc, out, err))
        check("intact: 21 records" in out, "verify output: %s" % out)
        note = "%d bytes after the last complete record (torn tail: the server recovers it at the next start)" \
            % (1 << 20)
        check(note in out, "no torn tail note in:\n%s" % out)
        rc, out, _ = talon("audit", "verify", "--key", key, "--open", "--format", "json", trail)
        check(rc == 0, "verify --open --format json: exit %d" % rc)
        check(json.loads(out)["torn_bytes"] == 1 << 20, "json torn_bytes: %s" % out)

        # Without --open the same tail is a truncated trail.
        rc, out, _ = talon("audit", "verify", "--key", key, trail)
        check(rc == 1 and "truncated" in out, "verify without --open: exit %d\n%s" % (rc, out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
