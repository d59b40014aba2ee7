#!/usr/bin/python3
"""`talon audit verify --witness` compares every field of a witness line
with the trail, not only the head and epoch. A line whose record= or
cause= disagrees with the witnessed record fails verification (exit 1)
and the detail names the witness line as FILE:LINE. A line whose values
are impossible on their own is an invalid witness log (exit 2, naming
FILE:LINE). Examples: last_seq=0, an epoch not below last_seq, a record
type the writer never witnesses, a cause that does not go with the
record type. A directory, and witness lines with NUL bytes, are invalid
witness logs too.

The trail and its witness lines are made independently of the C code,
by the reference writer and SHA-256 over each record's hashed prefix."""
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from audit_e2e import run_cli_test, write_ref_trail  # noqa: E402
from talon_e2e import CLI, check  # noqa: E402

WITNESSED = {"sys_startup": "startup", "audit_epoch_sealed": None, "sys_shutdown": "shutdown"}


def talon(*args):
    p = subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def witness_heads(trail):
    """One dict per record the writer witnesses: trail, epoch, seq, head,
    record, cause, as the server would send them."""
    heads = []
    for name in sorted(os.listdir(trail)):
        with open(os.path.join(trail, name), "rb") as f:
            for line in f.read().split(b"\n")[:-1]:
                rec = json.loads(line)
                if rec["type"] not in WITNESSED:
                    continue
                prefix = line[:line.rindex(b'"mac":"')]
                cause = WITNESSED[rec["type"]] or rec["data"]["cause"]
                heads.append({"trail": rec["trail"], "epoch": rec["epoch"], "seq": rec["seq"],
                              "head": hashlib.sha256(prefix).hexdigest(),
                              "record": rec["type"], "cause": cause})
    return heads


def witness_line(h):
    return ("<38>1 2026-12-04T21:00:00.000000Z demo talon-demo - audit.witness - "
            "talon-audit-witness v1 trail=%(trail)s epoch=%(epoch)d last_seq=%(seq)d "
            "head=%(head)s record=%(record)s cause=%(cause)s\n" % h)


def write_witness(path, heads):
    with open(path, "w") as f:
        f.write("an unrelated log line\n")
        for h in heads:
            f.write(witness_line(h))


def run(tmp):
    trail, key = write_ref_trail(tmp, 40, rotate_every=25, seal_every=10)

    heads = witness_heads(trail)
    causes = [h["cause"] for h in heads]
    for cause in ("startup", "interval", "rotation", "shutdown"):
        check(cause in causes, "the reference trail has no witnessed record with cause %s: %s"
              % (cause, causes))
    witness = os.path.join(tmp, "witness.log")
    write_witness(witness, heads)
    rc, out, err = talon("audit", "verify", "--key", key, "--witness", witness, trail)
    check(rc == 0, "verify with the true witness lines: exit %d\n%s%s" % (rc, out, err))
    check("%d chain heads match" % len(heads) in out, "verify output: %s" % out)

    interval = next(i for i, h in enumerate(heads) if h["cause"] == "interval")
    startup = next(i for i, h in enumerate(heads) if h["record"] == "sys_startup")
    shutdown_seal = next(i for i, h in enumerate(heads)
                         if h["record"] == "audit_epoch_sealed" and h["cause"] == "shutdown")

    # Lines that are possible but disagree with the record they witnessed.
    disagreeing = [
        ("a seal's cause", interval, {"cause": "rotation"}, "with cause interval"),
        ("a seal named as sys_shutdown", shutdown_seal,
         {"record": "sys_shutdown", "cause": "shutdown"}, "that record is audit_epoch_sealed"),
        ("sys_startup named as a seal", startup,
         {"record": "audit_epoch_sealed", "cause": "interval"}, "that record is sys_startup"),
    ]
    for name, i, change, detail in disagreeing:
        changed = [dict(h) for h in heads]
        changed[i].update(change)
        write_witness(witness, changed)
        witness_lineno = i + 2  # after the unrelated first line
        rc, out, err = talon("audit", "verify", "--key", key, "--witness", witness, "--format",
                             "json", trail)
        check(rc == 1, "%s: verify exit %d, expected 1\n%s%s" % (name, rc, out, err))
        res = json.loads(out)
        check(res["seq"] == heads[i]["seq"], "%s: verify names seq %r, expected %d"
              % (name, res["seq"], heads[i]["seq"]))
        check("%s:%d" % (witness, witness_lineno) in res["detail"],
              "%s: the detail does not name the witness line %s:%d: %s"
              % (name, witness, witness_lineno, res["detail"]))
        check(detail in res["detail"], "%s: %r not in the detail: %s" % (name, detail, res["detail"]))

    # Lines whose values cannot come from a writer: the witness log is invalid.
    impossible = [
        ("last_seq=0", {"seq": 0}, "last_seq=0"),
        ("an epoch at last_seq", {"epoch": heads[interval]["seq"]}, "is at most in epoch %d"
         % (heads[interval]["seq"] - 1)),
        ("an unwitnessed record type", {"record": "http_request"}, "record=http_request"),
        ("a seal cause of startup", {"cause": "startup"},
         "record=audit_epoch_sealed with cause=startup"),
    ]
    for name, change, message in impossible:
        changed = [dict(h) for h in heads]
        changed[interval].update(change)
        write_witness(witness, changed)
        rc, out, err = talon("audit", "verify", "--key", key, "--witness", witness, trail)
        check(rc == 2, "%s: verify exit %d, expected 2\n%s%s" % (name, rc, out, err))
        check(out == "", "%s: verify printed a result: %s" % (name, out))
        check("%s:%d: invalid witness line" % (witness, interval + 2) in err,
              "%s: the error does not name the witness line: %s" % (name, err))
        check(message in err, "%s: %r not in the error: %s" % (name, message, err))

    damaged_witness_files(tmp, trail, key, heads)


def damaged_witness_files(tmp, trail, key, heads):
    """A directory given as the witness log, and witness lines with NUL
    bytes (a log file cut short by a crash), are invalid witness logs
    (exit 2) with a message that names the problem."""
    rc, out, err = talon("audit", "verify", "--key", key, "--witness", tmp, trail)
    check(rc == 2, "--witness DIRECTORY: verify exit %d, expected 2\n%s%s" % (rc, out, err))
    check("witness log %s is a directory" % tmp in err, "--witness DIRECTORY: %s" % err)
    check("read error" not in err, "--witness DIRECTORY is reported as a read error: %s" % err)

    # Line 1 is unrelated, and witness lines start at line 2. One has NUL
    # bytes before it and one a NUL byte inside its mark. The unrelated line
    # with NUL bytes at the end is not a witness line and is skipped.
    witness = os.path.join(tmp, "witness-nul.log")
    with open(witness, "wb") as f:
        f.write(b"an unrelated log line\n")
        for i, h in enumerate(heads):
            line = witness_line(h).encode()
            if i == 1:
                line = b"\0" * 16 + line
            elif i == 3:
                line = line.replace(b"talon-audit-witness", b"talon-audit\0-witness", 1)
            f.write(line)
        f.write(b"\0\0\0 a damaged unrelated line\n")
    for fmt in ("text", "json"):
        rc, out, err = talon("audit", "verify", "--key", key, "--witness", witness, "--format", fmt, trail)
        check(rc == 2, "witness lines with NUL bytes: verify exit %d, expected 2\n%s%s" % (rc, out, err))
        check(out == "", "witness lines with NUL bytes: verify printed a result: %s" % out)
        check("%s:3: invalid witness line: it contains 16 NUL bytes" % witness in err,
              "witness lines with NUL bytes: the error does not name the first one: %s" % err)
        check("2 witness lines of the file contain NUL bytes" in err,
              "witness lines with NUL bytes: the error does not count them: %s" % err)


if __name__ == "__main__":
    run_cli_test("talon-witness-fields-", run)
