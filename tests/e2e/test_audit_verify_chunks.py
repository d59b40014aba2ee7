#!/usr/bin/python3
"""talon audit verify splits a file into chunks of about 1 MiB that several
threads hash, and links the first record of each chunk to the last of the
one before on the calling thread. On a trail of several chunks, verify
passes with 1, 2 and 3 threads. Edits at chunk boundaries get the verdict,
line and seq of the Python reference verifier with each thread count, with
the key and without (chain checks only). The edits change the prev of a
chunk's first record, delete or move a first record, or change a last
record."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ref as ref  # noqa: E402
from talon_e2e import CLI, check, fail  # noqa: E402

CHUNK_BYTES = 1 << 20  # POOL_CHUNK_BYTES in src/audit/verify_internal.h
THREADS = ("1", "2", "3")


def verify(trail, key, threads):
    """talon audit verify with key, or chain checks only when key is None."""
    keys = ["--key", key] if key else ["--no-key"]
    p = subprocess.run([CLI, "audit", "verify", "--format", "json", "--threads", threads] + keys + [trail],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    check(p.returncode in (0, 1), "verify --threads %s: exit %d: %s" % (threads, p.returncode, p.stderr[-300:]))
    return json.loads(p.stdout)


def location(result):
    if result["verdict"] == "intact":
        return ("intact",)
    file = os.path.basename(result["file"]) if result["file"] else None
    return (result["verdict"], file, result["line"], result["seq"])


def chunk_starts(data):
    """Line indexes (0-based) of the first line of each chunk after the first,
    found as verify finds them: after the first newline at or past each
    chunk's start + CHUNK_BYTES."""
    starts, begin = [], 0
    while begin + CHUNK_BYTES < len(data):
        nl = data.find(b"\n", begin + CHUNK_BYTES)
        if nl < 0 or nl + 1 >= len(data):
            break
        begin = nl + 1
        starts.append(data.count(b"\n", 0, begin))
    return starts


def main():
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    root = tempfile.mkdtemp(prefix="talon-chunks-")
    try:
        run(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root):
    key, state = os.path.join(root, "verify.key"), os.path.join(root, "key.state")
    ref.keygen(key, state)
    trail = os.path.join(root, "trail")
    w = ref.Writer(trail, state)
    w.clock = 1796342400.0
    w.record("sys_startup", actor=("system", []))
    ref.demo_records(w, 9000, 0, 1000)
    w.close()
    path = os.path.join(trail, "audit-00000001.jsonl")
    with open(path, "rb") as f:
        original = f.read()
    starts = chunk_starts(original)
    check(len(starts) >= 3, "the trail has %d bytes, %d chunk boundaries; expected 3 or more"
          % (len(original), len(starts)))

    want = ref.verify([trail], key)
    check(want["verdict"] == "intact", "reference verifier on the untouched trail: %r" % want)
    for threads in THREADS:
        got = verify(trail, key, threads)
        check(got["verdict"] == "intact" and got["records"] == original.count(b"\n"),
              "untouched trail, --threads %s: %r" % (threads, got))

    lines = original.split(b"\n")[:-1]
    a, b, c = starts[0], starts[1], starts[2]
    edits = [
        ("a byte of prev in the first record of chunk 2", lambda ls: flip_prev(ls, a)),
        ("the first record of chunk 3 deleted", lambda ls: ls[:b] + ls[b + 1:]),
        ("the first record of chunk 2 moved before the last of chunk 1",
         lambda ls: ls[:a - 1] + [ls[a], ls[a - 1]] + ls[a + 1:]),
        ("the actor of the last record of chunk 3 changed", lambda ls: change_actor(ls, c - 1)),
    ]
    problems = []
    for what, edit in edits:
        with open(path, "wb") as f:
            f.write(b"".join(line + b"\n" for line in edit(list(lines))))
        for use_key in (key, None):
            py = location(ref.verify([trail], use_key))
            mode = "key" if use_key else "no key"
            if py[0] == "intact":
                problems.append("%s (%s): the reference verifier passed it" % (what, mode))
            for threads in THREADS:
                c_loc = location(verify(trail, use_key, threads))
                if c_loc != py:
                    problems.append("%s (%s), --threads %s: C says %s, Python says %s"
                                    % (what, mode, threads, c_loc, py))
    with open(path, "wb") as f:
        f.write(original)
    check(not problems, "\n  ".join(problems))
    print("ok: %d chunk boundaries, %d edits at them, threads %s" % (len(starts), len(edits), ", ".join(THREADS)))


def flip_prev(lines, i):
    at = lines[i].index(b'"prev":"') + len(b'"prev":"') + 10
    line = bytearray(lines[i])
    line[at] = ord("0") if line[at] != ord("0") else ord("1")
    lines[i] = bytes(line)
    return lines


def change_actor(lines, i):
    check(b'"actor":{"id":"' in lines[i], "record %d has no actor id: %r" % (i + 1, lines[i][:200]))
    lines[i] = lines[i].replace(b'"actor":{"id":"', b'"actor":{"id":"X', 1)
    return lines


if __name__ == "__main__":
    main()
