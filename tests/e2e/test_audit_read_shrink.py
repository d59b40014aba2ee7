#!/usr/bin/python3
"""A trail file cut shorter while `talon audit` reads it: verify, query and
report name the file and exit 2 instead of dying of SIGBUS without a word.

The test hook TALON_TEST_PAUSE_AFTER_MAP=<FIFO> makes the reader wait after
mapping the files until the FIFO's writer closes it, so the file is always
cut between the mapping and the first read."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ref as ref  # noqa: E402
from talon_e2e import CLI, check, fail  # noqa: E402

MESSAGE = "shrank while being read (truncated by another process?); run the command again"


def run_and_shrink(args, victim, fifo):
    """Run talon with args, cut victim to 1000 bytes once its files are mapped."""
    env = dict(os.environ, TALON_TEST_PAUSE_AFTER_MAP=fifo)
    p = subprocess.Popen([CLI] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # Opening the FIFO for writing blocks until the reader opens it, which it
    # does only after mapping every file.
    with open(fifo, "wb"):
        os.truncate(victim, 1000)
    out, err = p.communicate(timeout=30)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def main():
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    tmp = tempfile.mkdtemp(prefix="talon-shrink-")
    try:
        key, state = os.path.join(tmp, "verify.key"), os.path.join(tmp, "key.state")
        ref.keygen(key, state)
        src = os.path.join(tmp, "src")
        w = ref.Writer(src, state)
        w.record("sys_startup", actor=("system", []))
        ref.demo_records(w, 400)
        w.close()
        original = os.path.join(src, "audit-00000001.jsonl")
        check(os.path.getsize(original) > 3 * 4096, "the test trail is too small to shrink")
        fifo = os.path.join(tmp, "pause")
        os.mkfifo(fifo)
        shr = os.path.join(tmp, "shr")
        os.mkdir(shr)
        victim = os.path.join(shr, "audit-00000001.jsonl")
        commands = [
            ["audit", "verify", "--key", key, "--threads", "1", shr],
            ["audit", "verify", "--key", key, "--threads", "4", shr],
            ["audit", "query", shr],
            ["audit", "report", shr],
        ]
        for args in commands:
            shutil.copyfile(original, victim)
            rc, out, err = run_and_shrink(args, victim, fifo)
            what = "talon %s" % " ".join(args)
            check(rc == 2, "%s: exit %d after the file shrank, expected 2\nstderr: %s" % (what, rc, err[:500]))
            check(victim + " " + MESSAGE in err, "%s: stderr does not name the file:\n%s" % (what, err[:500]))

        # Without the cut, the same file verifies: the exit above came from the cut.
        shutil.copyfile(original, victim)
        p = subprocess.run([CLI, "audit", "verify", "--key", key, shr], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        check(p.returncode == 0, "verify of the uncut copy: exit %d\n%s" % (p.returncode, p.stdout.decode()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
