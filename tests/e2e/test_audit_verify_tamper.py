#!/usr/bin/python3
"""talon audit verify against each tampering of a real trail.

The trail comes from `talon audit keygen` (the C key files) and the Python
reference writer (tests/e2e/audit_ref.py), across rotations and interval
seals. Each case copies it, tampers with it like an attacker would, and
checks that `talon audit verify` exits 1 naming the reason, file, line and
seq, and that the Python reference verifier names the same.
"""
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

FAILURES = []


def run_c(paths, key=None, extra=()):
    cmd = [CLI, "audit", "verify", "--format", "json"] + list(extra)
    cmd += ["--key", key] if key else ["--no-key"]
    p = subprocess.run(cmd + list(paths), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        fail("talon audit verify printed no JSON (exit %d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
    return p.returncode, out


def run_py(paths, key=None, open_=False, partial=False):
    return ref.verify(paths, key, open_, partial)


def lines_of(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")[:-1]


def write_lines(path, lines, final_newline=True):
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + (b"\n" if final_newline and lines else b""))


def seq_at(path, line):
    return json.loads(lines_of(path)[line - 1])["seq"]


def expect(name, trail, verdict, file, line, seq, key=None, extra=(), no_key_too=None):
    """Verify trail with the C and the Python verifier; both must name the same problem.
    no_key_too: (verdict, file, line, seq) expected from --no-key, or None to skip."""
    want = {"verdict": verdict, "file": file, "line": line, "seq": seq}
    open_ = "--open" in extra
    partial = "--partial" in extra
    rc, c = run_c([trail], key, extra)
    py = run_py([trail], key, open_, partial)
    got_c = {"verdict": c["verdict"], "file": c["file"] and os.path.basename(c["file"]),
             "line": c["line"], "seq": c["seq"]}
    got_py = {k: py[k] for k in ("verdict", "file", "line", "seq")}
    want_rc = 0 if verdict == "intact" else 1
    if verdict == "intact":
        # An intact trail has no location to compare.
        want = {"verdict": "intact"}
        got_c = {"verdict": c["verdict"]}
        got_py = {"verdict": py["verdict"]}
    if rc != want_rc:
        FAILURES.append("%s: talon audit verify exit %d, expected %d: %s" % (name, rc, want_rc, c))
    if got_c != want:
        FAILURES.append("%s: talon audit verify says %s (%s), expected %s" % (name, got_c, c.get("detail"), want))
    if got_py != want:
        FAILURES.append("%s: the Python verifier says %s (%s), expected %s" % (name, got_py, py["detail"], want))
    if no_key_too is not None:
        v, f, ln, s = no_key_too
        rc2, c2 = run_c([trail], None, extra)
        py2 = run_py([trail], None, open_, partial)
        want2 = {"verdict": v, "file": f, "line": ln, "seq": s}
        got2 = {"verdict": c2["verdict"], "file": c2["file"] and os.path.basename(c2["file"]),
                "line": c2["line"], "seq": c2["seq"]}
        if v == "intact":
            want2, got2 = {"verdict": v}, {"verdict": c2["verdict"]}
        got2py = {k: py2[k] for k in want2}
        if got2 != want2 or rc2 != (0 if v == "intact" else 1):
            FAILURES.append("%s --no-key: talon audit verify exit %d says %s (%s), expected %s"
                            % (name, rc2, got2, c2.get("detail"), want2))
        if got2py != want2:
            FAILURES.append("%s --no-key: the Python verifier says %s (%s), expected %s"
                            % (name, got2py, py2["detail"], want2))
    print("ok  %-40s %s %s" % (name, c["verdict"], c.get("detail", "")[:90]) if rc == want_rc else
          "BAD %-40s %s" % (name, c))


def make_trail(root, name, records=200, rotate=70, epoch=25, open_=False):
    key = os.path.join(root, name + ".key")
    state = os.path.join(root, name + ".state")
    p = subprocess.run([CLI, "audit", "keygen", "--key", key, "--state", state],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    check(p.returncode == 0, "talon audit keygen failed: %s" % p.stdout)
    check(os.stat(state).st_mode & 0o777 == 0o600, "key state file is not 0600")
    d = os.path.join(root, name)
    w = ref.Writer(d, state)
    w.record("sys_startup", actor=("system", []))
    ref.demo_records(w, records, rotate, epoch)
    w.close(seal=not open_)
    return d, key, state


def copy(src, root, name):
    dst = os.path.join(root, name)
    shutil.copytree(src, dst)
    return dst


def f(i):
    return "audit-%08d.jsonl" % i


def first_non_seal(path, start):
    ls = lines_of(path)
    for i in range(start - 1, len(ls)):
        if json.loads(ls[i])["type"] != ref.SEAL_TYPE:
            return i + 1
    fail("no non-seal record after line %d of %s" % (start, path))


def remac(line_bytes, key):
    """Recompute the MAC of a (modified) line with key: what a thief of key can do."""
    prefix = line_bytes[:line_bytes.rindex(b'"mac":"')]
    out, _ = ref.finish_line(prefix, key)
    return out[:-1]


def main():
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    root = tempfile.mkdtemp(prefix="talon-tamper-")
    try:
        cases(root)
    finally:
        if os.environ.get("TALON_KEEP_TMP") is None:
            shutil.rmtree(root, ignore_errors=True)
    if FAILURES:
        for m in FAILURES:
            print("FAIL: " + m, file=sys.stderr)
        sys.exit(1)


def cases(root):
    trail, key, state = make_trail(root, "a")
    files = sorted(os.listdir(trail))
    check(len(files) == 3, "expected 3 trail files after rotations, got %s" % files)
    _, key0 = ref.read_key(key)

    # Intact, across rotations, with and without the key.
    expect("intact trail", trail, "intact", None, 0, 0, key, no_key_too=("intact", None, 0, 0))
    p = subprocess.run([CLI, "audit", "verify", "--key", key, trail], stdout=subprocess.PIPE, timeout=60)
    check(p.returncode == 0 and b"intact" in p.stdout, "text output of an intact trail: %r" % p.stdout)

    f2 = lambda d: os.path.join(d, f(2))  # noqa: E731
    n = first_non_seal(f2(trail), 10)

    # 1. Modify a field.
    t = copy(trail, root, "modify")
    ls = lines_of(f2(t))
    check(b'"actor":{"id":"' in ls[n - 1], "line %d has no actor" % n)
    old = json.loads(ls[n - 1])["actor"]["id"].encode()
    ls[n - 1] = ls[n - 1].replace(b'"actor":{"id":"' + old + b'"', b'"actor":{"id":"mallory"', 1)
    write_lines(f2(t), ls)
    s = seq_at(f2(t), n)
    expect("modify a field", t, "modified", f(2), n, s, key, no_key_too=("modified", f(2), n, s))

    # 2. Delete a record.
    t = copy(trail, root, "delete")
    ls = lines_of(f2(t))
    s = json.loads(ls[n - 1])["seq"]
    del ls[n - 1]
    write_lines(f2(t), ls)
    expect("delete a record", t, "deleted", f(2), n, s + 1, key, no_key_too=("deleted", f(2), n, s + 1))

    # 3. Insert a forged record: the right seq and prev, a MAC made without the key.
    t = copy(trail, root, "insert")
    ls = lines_of(f2(t))
    before = json.loads(ls[n - 2])
    forged_prefix = ref.record_prefix(before["seq"] + 1, before["epoch"], before["time"], "user_deleted",
                                      "success", ("mallory", ["admin"]), ("10.9.9.9", None), None,
                                      ("user", "alice"), None, {}, "ref-1", before["trail"],
                                      hashlib.sha256(ls[n - 2][:ls[n - 2].rindex(b'"mac":"')]).hexdigest())
    forged, _ = ref.finish_line(forged_prefix, os.urandom(32))
    ls.insert(n - 1, forged[:-1])
    write_lines(f2(t), ls)
    s = before["seq"] + 1
    expect("insert a record", t, "inserted", f(2), n, s, key,
           no_key_too=("inserted", f(2), n + 1, s))

    # 4. Swap two records.
    t = copy(trail, root, "swap")
    ls = lines_of(f2(t))
    m = first_non_seal(f2(t), n + 1)
    check(m == n + 1, "records %d and %d are not neighbours" % (n, m))
    ls[n - 1], ls[n] = ls[n], ls[n - 1]
    write_lines(f2(t), ls)
    expect("swap two records", t, "reordered", f(2), n, seq_at(f2(t), n), key,
           no_key_too=("reordered", f(2), n, seq_at(f2(t), n)))

    # 5. Truncate after the last seal: drop the shutdown seal and what precedes it back to
    #    the last interval seal, so the trail still ends with a seal.
    t = copy(trail, root, "truncate-after-seal")
    f3 = os.path.join(t, f(3))
    ls = lines_of(f3)
    seals = [i for i, b in enumerate(ls) if json.loads(b)["type"] == ref.SEAL_TYPE]
    check(len(seals) >= 2, "file 3 has fewer than 2 seals")
    cut = seals[-2] + 1
    write_lines(f3, ls[:cut])
    s = json.loads(ls[cut - 1])["seq"]
    expect("truncate after the last seal", t, "truncated", f(3), cut, s, key,
           no_key_too=("truncated", f(3), cut, s))
    expect("truncate after the last seal --open", t, "intact", None, 0, 0, key, extra=("--open",))

    # 5b. A live trail (no shutdown seal): unsealed without --open, intact with it.
    live, lkey, _ = make_trail(root, "live", records=60, rotate=0, epoch=25, open_=True)
    lf = os.path.join(live, f(1))
    ls = lines_of(lf)
    seals = [i for i, b in enumerate(ls) if json.loads(b)["type"] == ref.SEAL_TYPE]
    first_unsealed = seals[-1] + 2
    expect("unsealed tail", live, "unsealed", f(1), first_unsealed, seq_at(lf, first_unsealed), lkey)
    expect("unsealed tail --open", live, "intact", None, 0, 0, lkey, extra=("--open",))

    # 6. Truncate mid-file: in the middle of a line, and at a line end of a rotated file.
    t = copy(trail, root, "truncate-mid-line")
    with open(f2(t), "rb") as fh:
        data = fh.read()
    cut_at = data.index(b"\n", len(data) // 2) + 40
    with open(f2(t), "wb") as fh:
        fh.write(data[:cut_at])
    torn_line = data[:cut_at].count(b"\n") + 1
    s_before = json.loads(data[:cut_at].split(b"\n")[-2])["seq"]
    expect("truncate mid-line", t, "truncated", f(2), torn_line, s_before + 1, key,
           no_key_too=("truncated", f(2), torn_line, s_before + 1))
    t = copy(trail, root, "truncate-mid-file")
    ls = lines_of(f2(t))
    write_lines(f2(t), ls[:n])
    expect("truncate a rotated file", t, "truncated", f(2), n, seq_at(f2(t), n), key,
           no_key_too=("truncated", f(2), n, seq_at(f2(t), n)))

    # 7. Wrong epoch key: a thief of a later key re-MACs an earlier record.
    t = copy(trail, root, "wrong-epoch")
    f1 = os.path.join(t, f(1))
    ls = lines_of(f1)
    k = first_non_seal(f1, 5)
    rec = json.loads(ls[k - 1])
    check(rec["epoch"] == 0, "line %d is not in epoch 0" % k)
    later = ref.key_for_epoch(key0, 3)
    changed = ls[k - 1].replace(b'"outcome":"' + rec["outcome"].encode() + b'"',
                                b'"outcome":"' + (b"failure" if rec["outcome"] == "success" else b"success") + b'"')
    ls[k - 1] = remac(changed, later)
    write_lines(f1, ls)
    expect("re-MAC with a later epoch key", t, "wrong epoch key", f(1), k, rec["seq"], key,
           no_key_too=("modified", f(1), k, rec["seq"]))
    #    ... and the same with the epoch field moved to the stolen key's epoch.
    t = copy(trail, root, "wrong-epoch-claimed")
    f1 = os.path.join(t, f(1))
    ls = lines_of(f1)
    ls[k - 1] = remac(ls[k - 1].replace(b'"epoch":0,', b'"epoch":3,', 1), later)
    write_lines(f1, ls)
    expect("claim a later epoch", t, "wrong epoch key", f(1), k, rec["seq"], key,
           no_key_too=("modified", f(1), k, rec["seq"]))

    #    ... and with the key stolen from the stopped server's key state (one epoch past the trail).
    t = copy(trail, root, "wrong-epoch-state")
    f1 = os.path.join(t, f(1))
    ls = lines_of(f1)
    _, state_epoch, stolen = ref.read_state(state)
    last_epoch = json.loads(lines_of(os.path.join(t, f(3)))[-1])["epoch"]
    check(state_epoch == last_epoch + 1, "key state epoch %d, last record epoch %d" % (state_epoch, last_epoch))
    ls[k - 1] = remac(changed, stolen)
    write_lines(f1, ls)
    expect("re-MAC with the stolen key state", t, "wrong epoch key", f(1), k, rec["seq"], key,
           no_key_too=("modified", f(1), k, rec["seq"]))

    # 8. Splice a file from another trail of the same shape.
    other, _, _ = make_trail(root, "b")
    t = copy(trail, root, "splice")
    shutil.copy(os.path.join(other, f(2)), f2(t))
    expect("splice a file from another trail", t, "spliced", f(2), 1, seq_at(f2(t), 1), key,
           no_key_too=("spliced", f(2), 1, seq_at(f2(t), 1)))

    # 9. Replace a whole file: rewritten with a recomputed chain under a guessed key ...
    t = copy(trail, root, "replace")
    ls = lines_of(f2(t))
    prev = hashlib.sha256(lines_of(os.path.join(t, f(1)))[-1].rsplit(b'"mac":"', 1)[0]).hexdigest()
    guessed = os.urandom(32)
    out = []
    for b in ls:
        r = json.loads(b)
        r["prev"] = prev
        prefix = ref.record_prefix(r["seq"], r["epoch"], r["time"], r["type"], r["outcome"],
                                   (r["actor"]["id"], r["actor"]["roles"]),
                                   (r["source"]["ip"], r["source"]["user_agent"]),
                                   None if r["request"] is None else
                                   (r["request"]["id"], r["request"]["method"], r["request"]["route"],
                                    r["request"]["path"]),
                                   None if r["target"] is None else (r["target"]["type"], r["target"]["id"]),
                                   r["reason"], r["data"], r["host"], r["trail"], prev)
        line, h = ref.finish_line(prefix, guessed)
        out.append(line[:-1])
        prev = h.hex()
    write_lines(f2(t), out)
    expect("replace a file (recomputed chain)", t, "modified", f(2), 1, seq_at(f2(t), 1), key,
           no_key_too=None)
    #    ... or with a copy of the next file.
    t = copy(trail, root, "replace-copy")
    shutil.copy(os.path.join(t, f(3)), f2(t))
    s_expected = json.loads(lines_of(os.path.join(t, f(1)))[-1])["seq"] + 1
    expect("replace a file with another", t, "deleted", f(2), 1, seq_at(f2(t), 1), key,
           no_key_too=("deleted", f(2), 1, seq_at(f2(t), 1)))
    check(seq_at(f2(t), 1) > s_expected, "the copied file does not skip records")

    # 10. Remove a seal: an interval seal inside a file, and the rotation seal at a file's end.
    t = copy(trail, root, "remove-seal")
    ls = lines_of(f2(t))
    seals = [i for i, b in enumerate(ls) if json.loads(b)["type"] == ref.SEAL_TYPE and
             json.loads(b)["data"]["cause"] == "interval"]
    check(seals, "file 2 has no interval seal")
    i = seals[0]
    s = json.loads(ls[i])["seq"]
    del ls[i]
    write_lines(f2(t), ls)
    expect("remove an interval seal", t, "deleted", f(2), i + 1, s + 1, key,
           no_key_too=("deleted", f(2), i + 1, s + 1))
    t = copy(trail, root, "remove-rotation-seal")
    f1 = os.path.join(t, f(1))
    ls = lines_of(f1)
    write_lines(f1, ls[:-1])
    expect("remove a rotation seal", t, "truncated", f(1), len(ls) - 1, seq_at(f1, len(ls) - 1), key,
           no_key_too=("truncated", f(1), len(ls) - 1, seq_at(f1, len(ls) - 1)))

    # 11. A missing file, and a trail whose start was removed (retention).
    t = copy(trail, root, "missing-file")
    os.unlink(f2(t))
    expect("delete a whole file", t, "deleted", f(3), 1, seq_at(os.path.join(t, f(1)), len(lines_of(os.path.join(t, f(1))))) + 1, key)
    t = copy(trail, root, "retention")
    os.unlink(os.path.join(t, f(1)))
    expect("oldest file removed", t, "incomplete", f(2), 1, seq_at(f2(t), 1), key)
    expect("oldest file removed --partial", t, "intact", None, 0, 0, key, extra=("--partial",),
           no_key_too=("intact", None, 0, 0))

    # 12. Epochs with no records but their seal (an interval seal right before a rotation seal).
    empty, ekey, _ = make_trail(root, "empty-epochs", records=120, rotate=40, epoch=20)
    zero_count = [json.loads(b) for p in ref.list_files([empty]) for b in lines_of(p)
                  if json.loads(b)["type"] == ref.SEAL_TYPE and json.loads(b)["data"]["count"] == 0]
    check(zero_count, "no seal with count 0 in the empty-epochs trail")
    expect("epochs with only a seal", empty, "intact", None, 0, 0, ekey, no_key_too=("intact", None, 0, 0))
    t = copy(empty, root, "empty-epochs-bad-seal")
    fz = os.path.join(t, f(1))
    ls = lines_of(fz)
    i = len(ls) - 1
    check(json.loads(ls[i])["data"]["count"] == 0, "file 1 does not end with an empty epoch's seal")
    ls[i] = ls[i].replace(b'"count":0,', b'"count":1,', 1)
    write_lines(fz, ls)
    s = json.loads(ls[i])["seq"]
    expect("seal with a wrong count", t, "modified", f(1), i + 1, s, ekey,
           no_key_too=("bad seal", f(1), i + 1, s))

    # 13. The wrong verification key: talon audit verify reports a usage
    # error (exit 2) naming both trail ids before it checks a record; the
    # reference verifier, which has no such step, names the first record.
    bkey = os.path.join(root, "b.key")
    p = subprocess.run([CLI, "audit", "verify", "--format", "json", "--key", bkey, trail],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    b_id, _ = ref.read_key(bkey)
    a_id, _ = ref.read_key(key)
    if p.returncode != 2 or p.stdout or ("key %s is for trail %s but the trail is %s"
                                         % (bkey, b_id, a_id)).encode() not in p.stderr:
        FAILURES.append("another trail's key: talon audit verify exit %d, expected 2 naming both "
                        "trail ids: %r %r" % (p.returncode, p.stdout, p.stderr))
    py = run_py([trail], bkey)
    if (py["verdict"], py["file"], py["line"]) != ("spliced", f(1), 1):
        FAILURES.append("another trail's key: the Python verifier says %r, expected spliced at %s:1"
                        % (py, f(1)))


if __name__ == "__main__":
    main()
