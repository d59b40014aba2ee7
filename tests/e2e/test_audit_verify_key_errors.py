#!/usr/bin/python3
"""Mistakes with the key file of `talon audit verify` are usage errors
(exit 2) that name the key file, never a finding against the trail
(exit 1). The mistakes: the key of another trail, a key file with a second
line or trailing bytes, CRLF line ends, a directory, an empty file and an
unreadable file.
The trail itself verifies with its own key throughout."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ref as ref  # noqa: E402
from audit_e2e import run_cli_test  # noqa: E402
from talon_e2e import CLI, check  # noqa: E402

NOBODY = 65534


_nobody_cli = None


def nobody_cli():
    """A copy of the talon binary that nobody may run: the build tree may
    sit under a directory only root can enter (a mktemp -d checkout)."""
    global _nobody_cli
    if _nobody_cli is None:
        d = tempfile.mkdtemp(prefix="talon-nobody-cli-")
        os.chmod(d, 0o755)
        _nobody_cli = os.path.join(d, "talon")
        shutil.copy2(CLI, _nobody_cli)
        os.chmod(_nobody_cli, 0o755)
        atexit.register(shutil.rmtree, d, True)
    return _nobody_cli


def nobody_env():
    """The environment without the sanitizers' log_path and suppressions
    settings, whose files under a root-only directory nobody cannot open:
    reports then go to stderr, where the checks below see them. The key
    errors end before any thread starts, so no suppression is needed."""
    env = dict(os.environ)
    for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"):
        if name in env:
            env[name] = ":".join(o for o in env[name].split(":")
                                 if not o.startswith(("log_path=", "suppressions=")))
    return env


def talon(args, as_nobody=False):
    def drop():
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    if as_nobody:
        p = subprocess.run([nobody_cli()] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30, preexec_fn=drop, env=nobody_env())
    else:
        p = subprocess.run([CLI] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def expect_usage_error(key, trail, *needles, as_nobody=False):
    """verify --key KEY TRAIL (text and JSON output) exits 2, prints nothing
    on stdout and names every needle on stderr."""
    for fmt in ("text", "json"):
        args = ["audit", "verify", "--key", key, "--format", fmt, trail]
        rc, out, err = talon(args, as_nobody)
        command = "talon %s" % " ".join(args)
        check(rc == 2, "%s: exit %d, expected 2\nstdout: %s\nstderr: %s" % (command, rc, out, err))
        check(out == "", "%s: a usage error printed a result on stdout: %r" % (command, out))
        check("NOT INTACT" not in err and "spliced" not in err,
              "%s: a key mistake is reported as tampering: %s" % (command, err))
        for s in needles:
            check(s in err, "%s: %r not in stderr: %s" % (command, s, err))


def run(tmp):
    key = os.path.join(tmp, "this.key")
    this_id, _ = ref.keygen(key, os.path.join(tmp, "this.state"))
    other_key = os.path.join(tmp, "other.key")
    other_id, _ = ref.keygen(other_key, os.path.join(tmp, "other.state"))

    trail = os.path.join(tmp, "trail")
    w = ref.Writer(trail, os.path.join(tmp, "this.state"))
    w.record("sys_startup", actor=("system", []))
    ref.demo_records(w, 12, 0, 5)
    w.close()
    rc, out, err = talon(["audit", "verify", "--key", key, trail])
    check(rc == 0, "verify with the trail's own key: exit %d\n%s%s" % (rc, out, err))

    # The key of another trail: both trail ids and what to do.
    expect_usage_error(other_key, trail, "key %s is for trail %s" % (other_key, other_id),
                       "but the trail is %s" % this_id, "pass the key file of this trail")

    with open(key) as f:
        line = f.read()
    check(line.endswith("\n") and line.count("\n") == 1, "keygen wrote %r" % line)

    second_line = os.path.join(tmp, "second-line.key")
    with open(second_line, "w") as f:
        f.write(line + "talon-audit-key v1 trail=%s key0=%s\n" % (other_id, "00" * 32))
    expect_usage_error(second_line, trail, second_line, "bytes after its key line")

    blank_line = os.path.join(tmp, "blank-line.key")
    with open(blank_line, "w") as f:
        f.write(line + "\n")
    expect_usage_error(blank_line, trail, blank_line, "1 bytes after its key line")

    trailing = os.path.join(tmp, "trailing.key")
    with open(trailing, "w") as f:
        f.write(line.rstrip("\n") + " # auditor copy\n")
    expect_usage_error(trailing, trail, trailing, "not a talon verification key",
                       "its first line has 142 bytes, a key line has 127")

    # CRLF line ends (a key copied through Windows): the message names the CR
    # and how to remove it, not only a byte count.
    crlf = os.path.join(tmp, "crlf.key")
    with open(crlf, "w", newline="\r\n") as f:
        f.write(line)
    expect_usage_error(crlf, trail, "verification key %s has CRLF line ends" % crlf,
                       "sed -i 's/\\r$//' %s" % crlf)
    crlf_short = os.path.join(tmp, "crlf-short.key")
    with open(crlf_short, "w", newline="\r\n") as f:
        f.write(line[:100] + "\n")
    expect_usage_error(crlf_short, trail, "not a talon verification key",
                       "its first line has 100 bytes before its CRLF line end, a key line has 127")

    expect_usage_error(tmp, trail, "verification key %s is a directory" % tmp)

    fifo = os.path.join(tmp, "fifo.key")
    os.mkfifo(fifo)
    expect_usage_error(fifo, trail, "verification key %s is not a regular file" % fifo)

    empty = os.path.join(tmp, "empty.key")
    open(empty, "w").close()
    expect_usage_error(empty, trail, "verification key %s is empty" % empty)

    missing = os.path.join(tmp, "missing.key")
    expect_usage_error(missing, trail, "verification key %s not found" % missing)

    # Unreadable: root may read any file, so as root the command runs as
    # the user nobody, on a trail that every user may read.
    unreadable = os.path.join(tmp, "unreadable.key")
    shutil.copy(key, unreadable)
    os.chmod(unreadable, 0)
    os.chmod(tmp, 0o755)
    for name in os.listdir(trail):
        os.chmod(os.path.join(trail, name), 0o644)
    os.chmod(trail, 0o755)
    expect_usage_error(unreadable, trail, "cannot read the verification key %s: Permission denied"
                       % unreadable, as_nobody=os.geteuid() == 0)

    # A key file without its final newline is still the one key line.
    no_newline = os.path.join(tmp, "no-newline.key")
    with open(no_newline, "w") as f:
        f.write(line.rstrip("\n"))
    rc, out, err = talon(["audit", "verify", "--key", no_newline, trail])
    check(rc == 0, "verify with a key file without its final newline: exit %d\n%s%s" % (rc, out, err))

    # The help states the exit status of a key mistake.
    rc, out, _ = talon(["audit", "verify", "--help"])
    check(rc == 0 and "key of another trail" in out, "verify --help does not say that a wrong key "
          "file exits 2:\n%s" % out)


if __name__ == "__main__":
    run_cli_test("talon-key-errors-", run)
