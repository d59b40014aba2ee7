#!/usr/bin/python3
"""A trail whose epochs are past 2^22 verifies: the verifier derives epoch
keys forward with no upper limit, as the writer keeps evolving them (with
epoch_seconds = 1 a server passes epoch 2^22 after 48.5 days). The trail is
the tail of a long one (--partial) written by the reference writer; a
changed record in it is still caught, so its MACs are really checked."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ref as ref  # noqa: E402
from talon_e2e import CLI, check, fail  # noqa: E402

FIRST_EPOCH = (1 << 22) + 3
FIRST_SEQ = 3 * FIRST_EPOCH


def talon(*args):
    p = subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def main():
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    tmp = tempfile.mkdtemp(prefix="talon-high-epoch-")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


def run(tmp):
    key, state = os.path.join(tmp, "verify.key"), os.path.join(tmp, "key.state")
    trail_id, key0 = ref.keygen(key, state)
    ref.write_state(state, trail_id, FIRST_EPOCH, ref.key_for_epoch(key0, FIRST_EPOCH))

    # The tail of a long trail: the writer resumes at a high seq and epoch.
    trail = os.path.join(tmp, "trail")
    w = ref.Writer(trail, state)
    w.seq = FIRST_SEQ - 1
    w.prev = "ab" * 32
    ref.demo_records(w, 40, 0, 10)
    w.close()

    for threads in ("1", "4"):
        rc, out, err = talon("audit", "verify", "--key", key, "--partial", "--threads", threads, trail)
        check(rc == 0, "verify --threads %s of a trail at epoch %d: exit %d\n%s%s"
              % (threads, FIRST_EPOCH, rc, out, err))
        check("epochs %d..%d" % (FIRST_EPOCH, FIRST_EPOCH + 4) in out, "verify output: %s" % out)
    res = ref.verify([trail], key, partial=True)
    check(res["verdict"] == ref.INTACT, "reference verifier: %r" % res)

    # A changed record past epoch 2^22 is caught by its MAC.
    path = os.path.join(trail, "audit-00000001.jsonl")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    check(b'"actor":{"id":"' in lines[5], "line 6 has no actor id: %r" % lines[5][:200])
    lines[5] = lines[5].replace(b'"actor":{"id":"', b'"actor":{"id":"X', 1)
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))
    rc, out, err = talon("audit", "verify", "--key", key, "--partial", trail)
    check(rc == 1, "verify of a changed record: exit %d, expected 1\n%s%s" % (rc, out, err))
    check(":6: seq %d: modified" % (FIRST_SEQ + 5) in out, "verify output: %s" % out)


if __name__ == "__main__":
    main()
