#!/usr/bin/python3
"""A record whose type is written with an escape ("audit_epoch_seal\\u0065d")
is a seal after JSON decoding. talon audit verify treats it as one, as the
Python reference verifier does, with the key and without: the trail below
is intact only when that record closes epoch 0."""
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ref as ref  # noqa: E402
from talon_e2e import CLI, check, fail  # noqa: E402

ESCAPED_SEAL = b'"type":"audit_epoch_seal\\u0065d"'


def write_trail(path, trail_id, key0):
    """Six records in epochs 0 and 1; the first seal's type is escaped."""
    keys = {0: key0, 1: ref.evolve(key0)}
    prev = ref.ZERO_PREV
    lines = []

    def record(seq, epoch, type_, data):
        nonlocal prev
        prefix = ref.record_prefix(seq, epoch, "2026-12-04T20:38:53.123456Z", type_, "success",
                                   ("system", []), (None, None), None, None, None, data, "h",
                                   trail_id, prev)
        prefix = prefix.replace(b'"type":"escaped seal"', ESCAPED_SEAL)
        h = hashlib.sha256(prefix).digest()
        mac = hmac.new(keys[epoch], h, hashlib.sha256).hexdigest().encode()
        lines.append(prefix + b'"mac":"' + mac + b'"}\n')
        prev = h.hex()

    record(1, 0, "sys_startup", {})
    record(2, 0, "user_created", {})
    record(3, 0, "escaped seal",
           {"epoch": 0, "count": 2, "first_seq": 1, "last_seq": 2, "head": prev, "cause": "interval"})
    record(4, 1, "user_created", {})
    record(5, 1, "sys_shutdown", {})
    record(6, 1, ref.SEAL_TYPE,
           {"epoch": 1, "count": 2, "first_seq": 4, "last_seq": 5, "head": prev, "cause": "shutdown"})
    with open(path, "wb") as f:
        f.write(b"".join(lines))
    check(ESCAPED_SEAL in lines[2], "record 3 has no escaped seal type: %r" % lines[2][:120])


def main():
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    root = tempfile.mkdtemp(prefix="talon-escaped-type-")
    try:
        key, state = os.path.join(root, "verify.key"), os.path.join(root, "key.state")
        trail_id, key0 = ref.keygen(key, state)
        trail = os.path.join(root, "trail")
        os.mkdir(trail)
        write_trail(os.path.join(trail, "audit-00000001.jsonl"), trail_id, key0)
        for keys in (["--key", key], ["--no-key"]):
            p = subprocess.run([CLI, "audit", "verify", "--format", "json"] + keys + [trail],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            check(p.returncode == 0 and json.loads(p.stdout)["seals"] == 2,
                  "talon audit verify %s: exit %d: %s %s" % (keys[0], p.returncode, p.stdout, p.stderr))
            py = ref.verify([trail], key if keys[0] == "--key" else None)
            check(py["verdict"] == "intact", "reference verifier %s: %r" % (keys[0], py))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("ok: an escaped seal type is a seal")


if __name__ == "__main__":
    main()
