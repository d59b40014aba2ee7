"""Helpers for the audit trail end-to-end tests: log in to the demo, read
the trail files the demo wrote, run `talon audit verify`, put the trail on
a small tmpfs and fill it.

The demo users are the built-in demo-only users (docs/audit.md)."""
import glob
import json
import os
import signal
import subprocess
import tempfile
import time

import audit_ref as ref
from talon_e2e import CLI, check, fail

PASSWORDS = {
    "alice": "alice-admin-demo",     # admin
    "bob": "bob-user-demo",          # user
    "carol": "carol-auditor-demo",   # auditor
    "dave": "dave-user-demo",        # user
}


def call(demo, method, target, body=None, token=None, headers=None, timeout=20):
    """One request with an optional JSON body and bearer token; returns
    (status, headers, parsed JSON body or raw bytes)."""
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if token is not None:
        h["Authorization"] = "Bearer " + token
    status, rh, raw = demo.request(method, target, body=data, headers=h, timeout=timeout)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return status, rh, parsed


def login(demo, user, password=None, headers=None):
    status, _, body = call(demo, "POST", "/login",
                           {"user": user, "password": password or PASSWORDS[user]},
                           headers=headers)
    check(status == 200, "login as %s: expected 200, got %d %r" % (user, status, body))
    check(isinstance(body.get("token"), str) and len(body["token"]) == 64,
          "login as %s: no 64-hex-digit token in %r" % (user, body))
    return body["token"]


def trail_dir(demo):
    return demo.path("var", "audit")


def post_note(demo, rid, token=None):
    """POST /notes with text and X-Request-ID rid; returns (status, body)."""
    status, _, body = call(demo, "POST", "/notes", {"text": rid}, token=token,
                           headers={"X-Request-ID": rid})
    return status, body


def post_notes_until_acked(demo, prefix, timeout=10):
    """POST notes with request ids PREFIX-0, PREFIX-1, ... every 0.1 s while
    the demo returns 503 (the trail is unhealthy) and stop at the first 201.
    Returns the acknowledged id; fails on another status or after timeout
    seconds."""
    deadline = time.time() + timeout
    i = 0
    while time.time() < deadline:
        rid = "%s-%d" % (prefix, i)
        status, body = post_note(demo, rid)
        if status == 201:
            return rid
        check(status == 503, "note %s while the trail recovers: status %d %r" % (rid, status, body))
        i += 1
        time.sleep(0.1)
    fail("the trail did not come back within %d s: note %s got 503" % (timeout, rid))


def stop_cleanly(demo):
    """Stop the demo with SIGTERM and check that it exits 0. On failure, the
    message gives the exit status (or the signal that ended the demo), its
    stderr and the end of its app log, since the demo's directory is
    removed afterwards."""
    running = demo.proc.poll() is None
    rc = demo.stop()
    if rc == 0:
        return
    if rc is not None and rc < 0:
        exit_text = "was killed by %s" % signal.Signals(-rc).name
    else:
        exit_text = "exited with status %r" % rc
    exit_text += " after SIGTERM" if running else " before the test sent SIGTERM"
    try:
        with open(demo.path("var", "log", "app.log"), errors="replace") as f:
            app_log = f.read()[-4000:]
    except OSError as e:
        app_log = "(no app log: %s)" % e
    fail("talon-demo did not exit cleanly: it %s\nstderr:\n%s\nend of app.log:\n%s"
         % (exit_text, demo.read_stderr()[-4000:], app_log))


def reject_then_recover(demo, rejected_id, prefix="after"):
    """After the test broke the trail (removed or moved its directory),
    check that the next audited note, rejected_id, gets 503, then post
    notes until the trail has recovered and one is acknowledged, and stop
    the demo cleanly. Returns (the acknowledged request id, the app log)."""
    status, body = post_note(demo, rejected_id)
    check(status == 503, "first note after breaking the trail (%s): expected 503, got %d %r"
          % (rejected_id, status, body))
    acked = post_notes_until_acked(demo, prefix)
    stop_cleanly(demo)
    with open(demo.path("var", "log", "app.log")) as f:
        return acked, f.read()


def check_restored_files(directory, names):
    """Check that each of names exists in directory with mode 0600."""
    for name in names:
        path = os.path.join(directory, name)
        check(os.path.exists(path), "%s was not restored in %s" % (name, directory))
        mode = os.stat(path).st_mode & 0o777
        check(mode == 0o600, "%s mode is %o, expected 600" % (path, mode))


def check_recovered_trail(recs, cause, acked, rejected_id):
    """Check the records of a trail restored after its directory was broken:
    one audit_recovered record with this cause and a recreated key state,
    a note_created record for every acknowledged request id, and none for
    the rejected one."""
    recovered = [r for r in recs if r["type"] == "audit_recovered"]
    check(len(recovered) == 1, "expected one audit_recovered record, got %d" % len(recovered))
    check(recovered[0]["data"]["cause"] == cause,
          "audit_recovered cause: expected %s, got %r" % (cause, recovered[0]["data"]))
    check(recovered[0]["data"]["key_state_recreated"] is True,
          "key state not recreated: %r" % recovered[0]["data"])
    ids = {r["request"]["id"] for r in recs if r["type"] == "note_created" and r["request"]}
    for rid in acked:
        check(rid in ids, "acknowledged note %s has no note_created record" % rid)
    check(rejected_id not in ids, "the rejected note %s has a note_created record" % rejected_id)


def mount_trail_tmpfs(demo):
    """Mount a 1 MiB tmpfs (mode 0700) on the demo's trail directory and
    return the directory. Mounting needs root: without it the test fails
    with mount's message. The caller unmounts it."""
    trail = trail_dir(demo)
    os.makedirs(trail)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", trail],
                             stderr=subprocess.PIPE)
    if mounted.returncode != 0:
        demo.cleanup()
        fail("cannot mount a tmpfs for the trail (this test needs root): %s"
             % mounted.stderr.decode().strip())
    return trail


def unmount_trail_tmpfs(demo, trail):
    """Kill the demo if it still runs, unmount the tmpfs that
    mount_trail_tmpfs put on trail, and remove the demo's directory."""
    if demo.proc is not None and demo.proc.poll() is None:
        demo.kill9()
    subprocess.run(["umount", trail])
    demo.cleanup()


def fill(path):
    """Write zeros into path until the filesystem is full."""
    block = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, block)
    except OSError:
        pass
    finally:
        os.close(fd)


def records(demo, settle=2.0, want=None):
    """Every parseable record of the demo's trail, in file order. With want
    (a predicate), poll up to settle seconds until one record matches, since
    async records reach the file a moment after the response."""
    deadline = time.time() + settle
    while True:
        out = []
        for path in sorted(glob.glob(os.path.join(trail_dir(demo), "audit-*.jsonl"))):
            with open(path, "rb") as f:
                for line in f.read().split(b"\n"):
                    if not line:
                        continue
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        if want is None or any(want(r) for r in out) or time.time() > deadline:
            return out
        time.sleep(0.05)


def find(demo, settle=3.0, **fields):
    """Records whose fields match, e.g. type="authn_login_fail",
    actor="bob", target_id="bob", request_id=...; waits for the first."""
    def match(r):
        for k, v in fields.items():
            if k == "actor":
                got = (r.get("actor") or {}).get("id")
            elif k == "request_id":
                got = (r.get("request") or {}).get("id")
            elif k == "target_type":
                got = (r.get("target") or {}).get("type")
            elif k == "target_id":
                got = (r.get("target") or {}).get("id")
            elif k == "method":
                got = (r.get("request") or {}).get("method")
            else:
                got = r.get(k)
            if got != v:
                return False
        return True
    return [r for r in records(demo, settle, match) if match(r)]


def expect_record(demo, what, **fields):
    found = find(demo, **fields)
    check(found, "%s: no audit record with %r" % (what, fields))
    return found[-1]


def check_complete(record, what):
    """PCI DSS 10.3: user, type, time, outcome, origin, affected resource."""
    check(record["actor"]["id"], "%s: record without a user: %r" % (what, record))
    check(record["type"], "%s: record without a type" % what)
    check(record["time"].endswith("Z"), "%s: record without a UTC time" % what)
    check(record["outcome"] in ("success", "failure"), "%s: bad outcome" % what)
    check(record["source"] and record["source"]["ip"], "%s: record without an origin: %r"
          % (what, record))
    check(record["target"] and record["target"]["type"] and record["target"]["id"],
          "%s: record without an affected resource: %r" % (what, record))


def verify(demo, open_trail=False):
    """Run `talon audit verify` on the demo's trail; returns (exit code, output)."""
    cmd = [CLI, "audit", "verify", "--key", demo.path("var", "audit-verify.key")]
    if open_trail:
        cmd.append("--open")
    cmd.append(trail_dir(demo))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace")


def check_verify(demo, open_trail=False):
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    code, out = verify(demo, open_trail)
    check(code == 0, "talon audit verify%s failed (exit %d):\n%s"
          % (" --open" if open_trail else "", code, out))


def run_cli_test(prefix, run):
    """Call run(tmp) with a new temporary directory named with prefix,
    removed afterwards, then print "ok". For tests of the talon command
    that need no demo."""
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        run(tmp)
    print("ok")


def write_ref_trail(tmp, records, rotate_every=0, seal_every=0, sealed=True):
    """Make keys in tmp and a trail tmp/trail with the reference writer:
    sys_startup, then `records` demo records with rotations and interval
    seals, then (when sealed) sys_shutdown and its seal. Returns
    (trail, key path)."""
    key, state = os.path.join(tmp, "verify.key"), os.path.join(tmp, "key.state")
    ref.keygen(key, state)
    trail = os.path.join(tmp, "trail")
    w = ref.Writer(trail, state)
    w.record("sys_startup", actor=("system", []))
    ref.demo_records(w, records, rotate_every, seal_every)
    w.close(seal=sealed)
    return trail, key
