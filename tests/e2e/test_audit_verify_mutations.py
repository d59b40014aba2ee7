#!/usr/bin/python3
"""Random byte edits of a trail: talon audit verify never crashes, exits 0
or 1, and names the same verdict, file, line and seq as the Python reference
verifier, with and without the key. The edits are seeded, so a failure can
be replayed with TALON_MUTATION_SEED."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ref as ref  # noqa: E402
from talon_e2e import CLI, check, fail  # noqa: E402

ROUNDS = 40
EDIT_BYTES = b' "\\{}[],:0a\n\x00\xc3\xe9'


def location(result, c_output):
    if result["verdict"] == "intact":
        return ("intact",)
    file = result["file"]
    if c_output and file:
        file = os.path.basename(file)
    return (result["verdict"], file, result["line"], result["seq"])


def edit(data, rnd):
    pos = rnd.randrange(len(data))
    op = rnd.randrange(4)
    if op == 0:
        data[pos] = rnd.randrange(256)
    elif op == 1:
        del data[pos]
    elif op == 2:
        data.insert(pos, rnd.choice(EDIT_BYTES))
    else:
        data[pos] ^= 1
    return "op %d at byte %d" % (op, pos)


def main():
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    seed = int(os.environ.get("TALON_MUTATION_SEED", "20261204"))
    rnd = random.Random(seed)
    root = tempfile.mkdtemp(prefix="talon-mutate-")
    try:
        key, state = os.path.join(root, "k"), os.path.join(root, "s")
        ref.keygen(key, state)
        trail = os.path.join(root, "trail")
        w = ref.Writer(trail, state)
        w.clock = 1796342400.0  # fixed times, so that a seed replays the same edits
        w.record("sys_startup", actor=("system", []))
        ref.demo_records(w, 90, 40, 15)
        w.close()
        problems = []
        for i in range(ROUNDS):
            work = os.path.join(root, "m%d" % i)
            shutil.copytree(trail, work)
            path = os.path.join(work, rnd.choice(sorted(os.listdir(work))))
            with open(path, "rb") as f:
                data = bytearray(f.read())
            what = "%s of %s" % (edit(data, rnd), os.path.basename(path))
            with open(path, "wb") as f:
                f.write(data)
            for use_key in (True, False):
                cmd = [CLI, "audit", "verify", "--format", "json"]
                cmd += ["--key", key] if use_key else ["--no-key"]
                p = subprocess.run(cmd + [work], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
                if p.returncode not in (0, 1):
                    problems.append("%s: exit %d: %s" % (what, p.returncode, p.stderr[-300:]))
                    continue
                c = location(json.loads(p.stdout), True)
                py = location(ref.verify([work], key if use_key else None), False)
                if c != py:
                    problems.append("%s (%s): C says %s, Python says %s"
                                    % (what, "key" if use_key else "no key", c, py))
            shutil.rmtree(work)
        check(not problems, "seed %d:\n  %s" % (seed, "\n  ".join(problems)))
        print("ok: %d edited trails, C and Python verifiers agree" % ROUNDS)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
