#!/usr/bin/python3
"""`talon audit query`, `report` and `tail` on a trail whose last file ends
with a torn line (the start of a record without its newline, as a crash
leaves it before the server's recovery). Each prints one warning on
stderr that names the file, the byte offset and the length of the torn
bytes. Each still prints every complete record and exits 0. A trail
without torn bytes gets no warning."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from audit_e2e import run_cli_test, write_ref_trail  # noqa: E402
from talon_e2e import CLI, check  # noqa: E402

TORN = b'{"v":1,"seq":999,"epoch":0,"time":"2026-12-04T21:0'


def talon(*args):
    p = subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def complete_records(trail):
    out = []
    for name in sorted(os.listdir(trail)):
        with open(os.path.join(trail, name), "rb") as f:
            out += [json.loads(line) for line in f.read().split(b"\n")[:-1]]
    return out


def run(tmp):
    trail, _ = write_ref_trail(tmp, 30, rotate_every=20, sealed=False)
    files = sorted(os.listdir(trail))
    check(len(files) == 2, "expected 2 trail files, got %s" % files)
    last = os.path.join(trail, files[-1])
    records = complete_records(trail)
    seqs = [r["seq"] for r in records]
    fails = [r["seq"] for r in records if r["outcome"] == "failure"]

    commands = [
        ("query", ["query", trail], seqs),
        ("query desc", ["query", "--order", "desc", trail], seqs[::-1]),
        ("query filtered", ["query", "--outcome", "failure", trail], fails),
        ("tail", ["tail", "-n", "5", trail], seqs[-5:]),
        ("report", ["report", "--format", "json", trail], None),
    ]

    # Without torn bytes: no warning.
    for name, args, _ in commands:
        rc, out, err = talon("audit", *args)
        check(rc == 0, "%s of a clean trail: exit %d\n%s" % (name, rc, err))
        check(err == "", "%s of a clean trail wrote to stderr: %s" % (name, err))

    size = os.path.getsize(last)
    with open(last, "ab") as f:
        f.write(TORN)
    warning = "%s: %d bytes at byte offset %d have no final newline" % (last, len(TORN), size)

    for name, args, want in commands:
        rc, out, err = talon("audit", *args)
        check(rc == 0, "%s with a torn tail: exit %d, expected 0\n%s" % (name, rc, err))
        check(warning in err, "%s with a torn tail: no warning %r on stderr: %r" % (name, warning, err))
        check(len(err.splitlines()) == 1, "%s with a torn tail: expected one warning line, got %r"
              % (name, err))
        if want is None:
            rep = json.loads(out)
            check(rep["records"] == len(records), "report counts %d records, expected %d"
                  % (rep["records"], len(records)))
            continue
        got = [json.loads(line)["seq"] for line in out.splitlines()]
        check(got == want, "%s with a torn tail printed seqs %s, expected %s" % (name, got, want))

    # The table format and the text report warn the same way.
    for args in (["query", "--format", "table", trail], ["report", trail]):
        rc, out, err = talon("audit", *args)
        check(rc == 0 and warning in err, "talon audit %s: exit %d, stderr %r"
              % (" ".join(args), rc, err))


if __name__ == "__main__":
    run_cli_test("talon-read-torn-", run)
