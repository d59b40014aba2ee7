#!/usr/bin/python3
"""talon audit verify, query, tail and report on trails written by the real
talon-demo (the C writer), cross-checked with the Python reference verifier,
jq and plain JSON parsing.

The demo runs twice on the same trail (a restart continues the chain), under
concurrent logins, with a small rotate_size and a 1 s epoch so that the trail
has several files and interval seals.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ref as ref  # noqa: E402
from talon_e2e import CLI, Demo, check, fail  # noqa: E402
from audit_e2e import PASSWORDS, call  # noqa: E402

CONFIG = """
[audit]
rotate_size = 16k
epoch_seconds = 1
"""


def logins(demo, n, threads=4, tolerate_errors=False):
    errors = []

    def worker(k):
        for i in range(k, n, threads):
            user = ["alice", "bob", "carol", "dave"][i % 4]
            password = PASSWORDS[user] if i % 3 else "wrong-password"
            try:
                status, _, _ = call(demo, "POST", "/login", {"user": user, "password": password})
                if status not in (200, 401, 429):  # 429: the demo throttles failed logins
                    errors.append("login %d: status %d" % (i, status))
            except OSError as e:
                errors.append("login %d: %s" % (i, e))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(tolerate_errors or not errors, "logins failed: %s" % errors[:3])


def talon(*args, timeout=60):
    return subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def location(result):
    """A verdict and where it points, comparable between the C and the Python verifier."""
    if result["verdict"] == "intact":
        return ("intact",)
    return (result["verdict"], result["file"] and os.path.basename(result["file"]), result["line"], result["seq"])


def all_records(trail):
    out = []
    for path in ref.list_files([trail]):
        with open(path, "rb") as f:
            for line in f.read().split(b"\n")[:-1]:
                out.append(json.loads(line))
    return out


def main():
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    demo = Demo(config=CONFIG)
    try:
        run(demo)
    finally:
        demo.cleanup()


def run(demo):
    demo.start()
    trail = demo.path("var", "audit")
    key = demo.path("var", "audit-verify.key")

    # tail -f follows the live trail across rotations while the demo writes.
    tail = subprocess.Popen([CLI, "audit", "tail", "-n", "0", "-f", trail],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        logins(demo, 120)
        time.sleep(1.3)  # let an epoch end with an interval seal
        logins(demo, 30)
        check(demo.stop() == 0, "talon-demo did not stop cleanly")
        last_seq = all_records(trail)[-1]["seq"]
        seen = []
        deadline = time.time() + 15
        buf = b""
        os.set_blocking(tail.stdout.fileno(), False)
        while time.time() < deadline and (not seen or seen[-1] < last_seq):
            chunk = tail.stdout.read()
            if chunk:
                buf += chunk
                *done, buf = buf.split(b"\n")
                seen += [json.loads(x)["seq"] for x in done]
            else:
                time.sleep(0.05)
    finally:
        tail.kill()
        tail.wait()
    files = ref.list_files([trail])
    check(len(files) >= 3, "expected rotations with rotate_size 16k, got %d files" % len(files))
    check(seen, "talon audit tail -f printed nothing")
    check(seen == list(range(seen[0], last_seq + 1)),
          "tail -f skipped or repeated records across rotations: %s..%s (%d)" % (seen[0], seen[-1], len(seen)))
    check(seen[0] <= 3, "tail -f started late, at seq %d" % seen[0])

    # A second run continues the same trail.
    demo.start()
    logins(demo, 20)
    check(demo.stop() == 0, "talon-demo did not stop cleanly the second time")

    p = talon("audit", "verify", "--key", key, trail)
    check(p.returncode == 0, "talon audit verify on the demo trail: exit %d\n%s%s"
          % (p.returncode, p.stdout.decode(), p.stderr.decode()))
    py = ref.verify([trail], key)
    check(py["verdict"] == "intact", "the Python verifier rejects the demo trail: %s" % py)
    p = talon("audit", "verify", "--no-key", trail)
    check(p.returncode == 0, "talon audit verify --no-key on the demo trail: exit %d" % p.returncode)

    files = ref.list_files([trail])
    recs = all_records(trail)
    seqs = [r["seq"] for r in recs]
    check(seqs == list(range(1, len(recs) + 1)), "the demo trail's seqs are not 1..N in file order")
    check(any(r["type"] == ref.SEAL_TYPE and r["data"]["cause"] == "interval" for r in recs),
          "no interval seal in the demo trail")

    # query: the same selection as plain JSON parsing and jq.
    want = [r["seq"] for r in recs if r["type"] == "authn_login_fail"]
    p = talon("audit", "query", "--type", "authn_login_fail", trail)
    check(p.returncode == 0, "talon audit query failed: %s" % p.stderr.decode())
    got = [json.loads(x)["seq"] for x in p.stdout.splitlines()]
    check(got == want, "query --type authn_login_fail: %d records, expected %d" % (len(got), len(want)))
    if shutil.which("jq"):
        cat = b"".join(open(f, "rb").read() for f in files)
        j = subprocess.run(["jq", "-c", 'select(.type == "authn_login_fail") | .seq'], input=cat,
                           stdout=subprocess.PIPE, timeout=60)
        check([int(x) for x in j.stdout.split()] == got, "jq selects other records than talon audit query")
    want = [r["seq"] for r in recs if r["actor"]["id"] == "bob" and r["outcome"] == "success"
            and r["type"].startswith("authn_")]
    p = talon("audit", "query", "--actor", "bob", "--outcome", "success", "--type", "authn_*", trail)
    got = [json.loads(x)["seq"] for x in p.stdout.splitlines()]
    check(got == want, "query --actor bob --outcome success --type authn_*: %s, expected %s" % (got[:5], want[:5]))
    rid = next(r for r in recs if r["request"] and r["request"]["id"])["request"]["id"]
    want = [r["seq"] for r in recs if r["request"] and r["request"]["id"] == rid]
    p = talon("audit", "query", "--request-id", rid, "--format", "table", trail)
    rows = p.stdout.decode().splitlines()
    check(rows[0].startswith("TIME") and len(rows) == len(want) + 1,
          "query --request-id --format table: %d rows for %d records" % (len(rows) - 1, len(want)))
    mid = recs[len(recs) // 2]["time"]
    want = [r["seq"] for r in recs if r["time"] >= mid]
    p = talon("audit", "query", "--since", mid, trail)
    got = [json.loads(x)["seq"] for x in p.stdout.splitlines()]
    check(got == want, "query --since %s: %d records, expected %d" % (mid, len(got), len(want)))

    # tail -n, and report.
    p = talon("audit", "tail", "-n", "3", trail)
    got = [json.loads(x)["seq"] for x in p.stdout.splitlines()]
    check(got == seqs[-3:], "tail -n 3: %s, expected %s" % (got, seqs[-3:]))
    p = talon("audit", "report", "--format", "json", trail)
    rep = json.loads(p.stdout)
    by_type = {}
    for r in recs:
        by_type[r["type"]] = by_type.get(r["type"], 0) + 1
    check(rep["by_type"] == by_type, "report by_type %s, expected %s" % (rep["by_type"], by_type))
    check(rep["records"] == len(recs), "report counts %d records, expected %d" % (rep["records"], len(recs)))
    fails = {}
    for r in recs:
        if r["type"] == "authn_login_fail":
            fails[r["source"]["ip"]] = fails.get(r["source"]["ip"], 0) + 1
    check(rep["failed_logins_by_source"] == fails, "report failed logins %s, expected %s"
          % (rep["failed_logins_by_source"], fails))
    p = talon("audit", "report", trail)
    check(p.returncode == 0 and b"Failed logins by source" in p.stdout, "text report: %r" % p.stdout[:200])

    # Tamper with the demo's trail: both verifiers name the same record.
    f2 = files[1]
    with open(f2, "rb") as fh:
        original = fh.read()
    lines = original.split(b"\n")
    victim = next(i for i, b in enumerate(lines) if b'"outcome":"failure"' in b)
    lines[victim] = lines[victim].replace(b'"outcome":"failure"', b'"outcome":"success"', 1)
    with open(f2, "wb") as fh:
        fh.write(b"\n".join(lines))
    p = talon("audit", "verify", "--format", "json", "--key", key, trail)
    c = json.loads(p.stdout)
    py = ref.verify([trail], key)
    check(p.returncode == 1 and c["verdict"] == "modified" and c["line"] == victim + 1,
          "tampered demo trail: %s" % c)
    check((py["verdict"], py["file"], py["line"], py["seq"]) ==
          (c["verdict"], os.path.basename(c["file"]), c["line"], c["seq"]),
          "the verifiers disagree on the tampered demo trail: %s vs %s" % (py, c))
    # kill -9 under load: both verifiers give the same verdict on the cut trail, and
    # after the restart's crash recovery and a clean stop the trail is intact again.
    with open(f2, "wb") as fh:
        fh.write(original)
    demo.start()
    load = threading.Thread(target=logins, args=(demo, 400), kwargs={"tolerate_errors": True})
    load.start()
    time.sleep(0.5)
    demo.kill9()
    load.join()
    for extra in ([], ["--open"]):
        p = talon("audit", "verify", "--format", "json", "--key", key, *extra, trail)
        c = json.loads(p.stdout)
        py = ref.verify([trail], key, open_=bool(extra))
        check(location(c) == location(py), "after kill -9%s the verifiers disagree: C %s, Python %s"
              % (" (--open)" if extra else "", c, py))
        if extra:
            check(c["verdict"] == "intact", "after kill -9, verify --open: %s" % c)
        else:
            check(c["verdict"] in ("unsealed", "truncated"), "after kill -9, verify: %s" % c)
    demo.start()
    check(demo.stop() == 0, "talon-demo did not stop cleanly after the crash")
    p = talon("audit", "verify", "--key", key, trail)
    check(p.returncode == 0, "verify after crash recovery: exit %d\n%s" % (p.returncode, p.stdout.decode()))
    py = ref.verify([trail], key)
    check(py["verdict"] == "intact", "the Python verifier after crash recovery: %s" % py)
    print("ok: %d records in %d files verified; tail -f followed %d records; kill -9 recovered"
          % (len(recs), len(files), len(seen)))


if __name__ == "__main__":
    main()
