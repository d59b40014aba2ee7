#!/usr/bin/python3
"""The talon command's help, exit codes and error messages for the audit
subcommands: help for every subcommand, usage errors exit 2 and name the
value, keygen writes 0600 files and never overwrites, and a malformed line
is reported as FILE:LINE."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ref as ref  # noqa: E402
from talon_e2e import CLI, check, fail  # noqa: E402

SUBCOMMANDS = ["keygen", "verify", "query", "tail", "report"]


def talon(*args, cwd=None):
    p = subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, cwd=cwd)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def expect(args, code, out_has=(), err_has=(), cwd=None):
    rc, out, err = talon(*args, cwd=cwd)
    check(rc == code, "talon %s: exit %d, expected %d\nstdout: %s\nstderr: %s"
          % (" ".join(args), rc, code, out[:500], err[:500]))
    for s in out_has:
        check(s in out, "talon %s: %r not in stdout:\n%s" % (" ".join(args), s, out[:1000]))
    for s in err_has:
        check(s in err, "talon %s: %r not in stderr:\n%s" % (" ".join(args), s, err[:1000]))
    return out, err


def main():
    if not os.path.exists(CLI):
        fail("the talon command is missing at %s" % CLI)
    tmp = tempfile.mkdtemp(prefix="talon-cli-")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


def run(tmp):
    # Help: exit 0 on stdout; usage errors exit 2 on stderr.
    expect(["--help"], 0, out_has=["usage: talon", "audit"])
    expect([], 2, err_has=["usage: talon"])
    expect(["frobnicate"], 2, err_has=["unknown command \"frobnicate\""])
    expect(["audit", "--help"], 0, out_has=["usage: talon audit"] + SUBCOMMANDS)
    expect(["audit"], 2, err_has=["usage: talon audit"])
    expect(["audit", "frob"], 2, err_has=["unknown audit subcommand \"frob\""])
    for sub in SUBCOMMANDS:
        out, _ = expect(["audit", sub, "--help"], 0, out_has=["usage: talon audit " + sub])
        expect(["audit", sub, "-h"], 0, out_has=["usage: talon audit " + sub])
    option_errors(tmp)

    # keygen: default paths relative to the working directory, 0600, no overwrite.
    out, _ = expect(["audit", "keygen"], 0, out_has=["var/audit/key.state", "audit-verify.key", "off this machine"],
                    cwd=tmp)
    for name in ("var/audit/key.state", "audit-verify.key"):
        mode = os.stat(os.path.join(tmp, name)).st_mode & 0o777
        check(mode == 0o600, "%s has mode %o, expected 600" % (name, mode))
    expect(["audit", "keygen"], 2, err_has=["already exists"], cwd=tmp)
    key = os.path.join(tmp, "audit-verify.key")
    state = os.path.join(tmp, "var/audit/key.state")
    keygen_errors(tmp, key)

    # A small trail from the reference writer.
    trail = os.path.join(tmp, "trail")
    w = ref.Writer(trail, state)
    w.record("sys_startup", actor=("system", []))
    ref.demo_records(w, 30, 0, 10)
    w.record("audit_records_lost", "failure", actor=("system", []), reason="records were not written to the trail",
             data={"lost": 3})
    w.record("audit_recovered", actor=("system", []),
             data={"torn_bytes": 12, "torn_file": "audit-00000001.jsonl.torn-1", "last_seq": 33})
    w.close()
    expect(["audit", "verify", "--key", key, trail], 0, out_has=["intact: 38 records"])
    out, _ = expect(["audit", "report", "--format", "json", trail], 0)
    rep = json.loads(out)
    check(rep["lost_records"] == 3, "report lost_records: %r" % rep["lost_records"])
    check(rep["recoveries"] == 1, "report recoveries: %r" % rep["recoveries"])
    # Async records are lost under fail_closed too, so the label names no policy alone.
    out, _ = expect(["audit", "report", trail], 0, out_has=["Lost records:    3 (audit_records_lost: "])
    check("fail_closed" in out, "report does not say that records can be lost under fail_closed:\n%s" % out)

    # tail -n larger than the trail prints the whole trail, as tail(1) does,
    # without memory for N records up front.
    for n in ("2000000000", "1000000000000000000"):
        out, err = expect(["audit", "tail", "-n", n, trail], 0)
        check(len(out.splitlines()) == 38, "tail -n %s printed %d records, expected 38\nstderr: %s"
              % (n, len(out.splitlines()), err[:500]))
    out, _ = expect(["audit", "tail", "-n", "0", trail], 0)
    check(out == "", "tail -n 0 printed %r" % out[:500])

    # verify usage and I/O errors: exit 2, naming the value.
    expect(["audit", "verify", trail], 2, err_has=["--key FILE", "--no-key"])
    expect(["audit", "verify", "--key", key], 2, err_has=["no trail given"])
    expect(["audit", "verify", "--key", key, "--no-key", trail], 2, err_has=["exclude each other"])
    expect(["audit", "verify", "--key", os.path.join(tmp, "missing.key"), trail], 2, err_has=["missing.key"])
    expect(["audit", "verify", "--key", state, trail], 2, err_has=["not a talon verification key"])
    expect(["audit", "verify", "--key", key, os.path.join(tmp, "nowhere")], 2, err_has=["nowhere"])
    expect(["audit", "verify", "--key", key, "--format", "xml", trail], 2, err_has=["xml"])
    expect(["audit", "verify", "--key", key, "--threads", "0", trail], 2, err_has=["--threads"])

    # The same file given twice, by one path, by another path, or through
    # its directory, is a usage error that names both paths.
    f1 = os.path.join(trail, "audit-00000001.jsonl")
    f1_alias = os.path.join(trail, ".", "audit-00000001.jsonl")
    for paths, first, again in (([f1, f1], f1, f1), ([f1, f1_alias], f1, f1_alias), ([trail, f1], f1, f1)):
        want = "%s: given twice (the same file as %s)" % (again, first)
        out, err = expect(["audit", "verify", "--key", key] + paths, 2, err_has=[want])
        check("missing" not in out + err, "verify %s names a missing file:\n%s%s" % (paths, out, err))
        expect(["audit", "query"] + paths, 2, err_has=[want])
        expect(["audit", "report"] + paths, 2, err_has=[want])

    # query/tail/report option errors name the bad value.
    expect(["audit", "query", "--since", "noon", trail], 2, err_has=["noon", "RFC 3339"])
    expect(["audit", "query", "--outcome", "maybe", trail], 2, err_has=["maybe"])
    expect(["audit", "query", "--format", "csv", trail], 2, err_has=["csv"])
    expect(["audit", "query", "--type", "x"], 2, err_has=["no trail given"])
    expect(["audit", "tail", "-n", "ten", trail], 2, err_has=["ten"])
    expect(["audit", "tail", trail, trail], 2, err_has=["one trail"])
    expect(["audit", "report", os.path.join(tmp, "nowhere")], 2, err_has=["nowhere"])
    expect(["audit", "report", "--format", "text", trail], 0, out_has=["Events by type"])
    expect(["audit", "report", "--format", "yaml", trail], 2, err_has=["use text or json"])
    out, _ = expect(["audit", "query", "--type", "nothing_like_this", trail], 0)
    check(out == "", "a query without matches printed %r" % out)

    fifo_trail_files(tmp, key, trail)
    swapped_files(tmp)
    report_escapes(tmp)
    report_unusual_keys(tmp)
    recovery_causes(tmp)

    # A malformed line: verify names FILE:LINE, query skips it and names it.
    f1 = os.path.join(trail, "audit-00000001.jsonl")
    with open(f1, "rb") as fh:
        lines = fh.read().split(b"\n")
    lines[6] = lines[6].replace(b'"seq":', b'"seq" :', 1)
    with open(f1, "wb") as fh:
        fh.write(b"\n".join(lines))
    out, _ = expect(["audit", "verify", "--key", key, trail], 1,
                    out_has=["NOT INTACT: %s:7: seq 7: malformed: record does not parse: at byte" % f1])
    out, err = expect(["audit", "query", trail], 0, err_has=["%s:7: skipped a line that is not a valid record" % f1])
    check(len(out.splitlines()) == 37, "query printed %d records, expected 37" % len(out.splitlines()))


def option_errors(tmp):
    """Every subcommand reports an option error in one line that starts
    with "talon: audit SUB:", names the option and points to --help. The
    commands run in an empty directory, so a keygen that took a missing
    value from the next argument would not write anywhere else."""
    cwd = os.path.join(tmp, "option-errors")
    os.mkdir(cwd, 0o700)
    cases = [(sub, ["--no-such-option", "trail"], "unknown option '--no-such-option'") for sub in SUBCOMMANDS]
    cases += [(sub, ["-z", "trail"], "unknown option '-z'") for sub in SUBCOMMANDS]
    cases += [(sub, ["--help=yes", "trail"], "option '--help' takes no value") for sub in SUBCOMMANDS]
    cases += [
        ("keygen", ["--key"], "option '--key' needs a value"),
        ("verify", ["--key"], "option '--key' needs a value"),
        ("verify", ["-k"], "option '-k' needs a value"),
        ("verify", ["--open", "-zk", "k", "trail"], "unknown option '-z'"),
        ("query", ["--type"], "option '--type' needs a value"),
        ("query", ["--typ"], "option '--typ' needs a value"),
        ("query", ["--ta", "x", "trail"], "ambiguous option '--ta' (it abbreviates several options)"),
        ("tail", ["-n"], "option '-n' needs a value"),
        ("tail", ["--lines"], "option '--lines' needs a value"),
        ("report", ["--bogus=1", "trail"], "unknown option '--bogus'"),
    ]
    for sub, args, what in cases:
        rc, out, err = talon("audit", sub, *args, cwd=cwd)
        want = "talon: audit %s: %s; run 'talon audit %s --help' for the options\n" % (sub, what, sub)
        check(rc == 2, "talon audit %s %s: exit %d, expected 2" % (sub, " ".join(args), rc))
        check(err == want, "talon audit %s %s: stderr %r, expected %r" % (sub, " ".join(args), err, want))
    check(os.listdir(cwd) == [], "option errors left files: %s" % os.listdir(cwd))


def keygen_errors(tmp, key):
    """keygen names a directory or a symbolic link given as --key or
    --state and says what to pass instead. A keygen that fails removes the
    directories it created."""
    d = os.path.join(tmp, "keygen-errors")
    os.mkdir(d, 0o700)
    os.mkdir(os.path.join(d, "keys"), 0o700)
    for opt, name in (("--key", "audit-verify.key"), ("--state", "key.state")):
        other = "--state" if opt == "--key" else "--key"
        _, err = expect(["audit", "keygen", opt, "keys", other, "new-" + name], 2,
                        err_has=["%s keys is a directory" % opt, "keys/" + name], cwd=d)
        check("already exists" not in err, "keygen %s DIR: %r" % (opt, err))

    os.symlink("nowhere.key", os.path.join(d, "link.key"))
    for opt in ("--key", "--state"):
        other = "--state" if opt == "--key" else "--key"
        _, err = expect(["audit", "keygen", opt, "link.key", other, "new.file"], 2,
                        err_has=["%s link.key is a symbolic link to nowhere.key" % opt,
                                 "pass %s the path of a new file" % opt], cwd=d)
        check("configuration" not in err, "keygen %s SYMLINK speaks of a configuration: %r" % (opt, err))
    check(sorted(os.listdir(d)) == ["keys", "link.key"], "keygen errors left files: %s" % os.listdir(d))

    # A key that exists: the state's new directories are not created.
    expect(["audit", "keygen", "--key", key, "--state", "fresh/sub/key.state"], 2,
           err_has=["already exists"], cwd=d)
    check(not os.path.exists(os.path.join(d, "fresh")), "a failed keygen left the state directory fresh/")
    # The key's directory cannot be made (a file is in the way) after the
    # state's directories were: those are removed again.
    with open(os.path.join(d, "plain"), "w") as f:
        f.write("not a directory\n")
    expect(["audit", "keygen", "--key", "plain/sub/v.key", "--state", "fresh/sub/key.state"], 2,
           err_has=["plain/sub/v.key"], cwd=d)
    check(not os.path.exists(os.path.join(d, "fresh")), "a failed keygen left the state directory fresh/")
    # A directory that existed before stays.
    expect(["audit", "keygen", "--key", key, "--state", "keys/sub/key.state"], 2, cwd=d)
    check(os.listdir(os.path.join(d, "keys")) == [], "a failed keygen left keys/sub")
    check(os.path.isdir(os.path.join(d, "keys")), "a failed keygen removed the existing directory keys/")


def start_trail(d):
    """Make directory d with a key made by keygen (d/v.key) and a trail
    d/trail that starts with sys_startup. Returns (trail, its ref.Writer)."""
    os.mkdir(d, 0o700)
    expect(["audit", "keygen", "--state", "trail/key.state", "--key", "v.key"], 0, cwd=d)
    trail = os.path.join(d, "trail")
    w = ref.Writer(trail, os.path.join(trail, "key.state"))
    w.record("sys_startup", actor=("system", []))
    return trail, w


def swapped_files(tmp):
    """Two rotated files that swapped names: verify still reports the gap
    that the chain shows, and adds that the files appear out of order,
    naming them by the seq of their first records."""
    d = os.path.join(tmp, "swapped")
    trail, w = start_trail(d)
    ref.demo_records(w, 120, rotate_every=30)
    w.close()
    f2, f3 = (os.path.join(trail, "audit-%08d.jsonl" % i) for i in (2, 3))
    with open(f2, "rb") as f:
        first2 = json.loads(f.readline())["seq"]
    with open(f3, "rb") as f:
        first3 = json.loads(f.readline())["seq"]
    os.rename(f2, f2 + ".tmp")
    os.rename(f3, f2)
    os.rename(f2 + ".tmp", f3)

    want = ("the files appear out of order: %s starts at seq %d but comes after %s, which starts at seq %d"
            % (f3, first2, f2, first3))
    key = os.path.join(d, "v.key")
    out, _ = expect(["audit", "verify", "--key", key, trail], 1, out_has=["deleted: seq", want])
    out, _ = expect(["audit", "verify", "--key", key, "--format", "json", trail], 1)
    res = json.loads(out)
    check(res["verdict"] == "deleted", "swapped files: verdict %r" % res["verdict"])
    check(want in res["detail"], "swapped files: %r not in the JSON detail %r" % (want, res["detail"]))
    # Files in order with a record deleted: a gap, and no word about the order.
    os.rename(f2, f2 + ".tmp")
    os.rename(f3, f2)
    os.rename(f2 + ".tmp", f3)
    expect(["audit", "verify", "--key", key, trail], 0, out_has=["intact: "])
    with open(f2, "rb") as f:
        lines = f.read().split(b"\n")
    with open(f2, "wb") as f:
        f.write(b"\n".join(lines[:5] + lines[6:]))
    out, _ = expect(["audit", "verify", "--key", key, trail], 1, out_has=["deleted: seq"])
    check("out of order" not in out, "a deleted record reads as files out of order:\n%s" % out)


def report_escapes(tmp):
    """report shows every value as the table format does: C0 and C1
    controls as '?', bidi overrides and isolates and the line and paragraph
    separators as \\uXXXX, so no value reaches the terminal raw. The JSON
    summary escapes them as JSON does."""
    trail, w = start_trail(os.path.join(tmp, "escapes"))
    actor = "b\x1b[31mob\u202e\u0085x\u2066\u2029"
    ip = "10.0.0.1\u202e\u2028\u0085evil"
    w.record("authn_login_fail", "failure", actor=(actor, ["user"]), source=(ip, "curl/7.88.1"))
    w.close()

    actor_shown = "b?[31mob\\u202e?x\\u2066\\u2029"
    ip_shown = "10.0.0.1\\u202e\\u2028?evil"
    # The table cuts a cell at its width (16 and 22 columns) and ends it with '~'.
    expect(["audit", "query", "--format", "table", trail], 0, out_has=[actor_shown[:15] + "~", ip_shown[:21] + "~"])
    out, _ = expect(["audit", "report", trail], 0, out_has=["  " + actor_shown + "\n", "  " + ip_shown + "\n"])
    for raw in ("\x1b", "\u202e", "\u0085", "\u2066", "\u2028", "\u2029"):
        check(raw not in out, "report printed %r raw:\n%s" % (raw, out))
    # The JSON summary escapes every non-ASCII character, so a terminal
    # shows none of them raw, and a JSON parser still reads the value whole.
    out, _ = expect(["audit", "report", "--format", "json", trail], 0)
    for raw in ("\x1b", "\u202e", "\u0085", "\u2066", "\u2028", "\u2029"):
        check(raw not in out, "report --format json printed %r raw:\n%s" % (raw, out))
    summary = json.loads(out)
    check(summary["by_actor"].get(actor) == 1, "report --format json by_actor: %r"
          % summary["by_actor"])
    check(summary["failed_logins_by_source"].get(ip) == 1,
          "report --format json failed_logins_by_source: %r" % summary["failed_logins_by_source"])


def report_unusual_keys(tmp):
    """report counts every actor, also those that jansson rejects as object
    keys. A value with a NUL or a lone surrogate escape is counted under its
    written text. A value longer than 255 bytes is cut after its last whole
    character."""
    trail, w = start_trail(os.path.join(tmp, "unusual"))
    for actor in ("a\x00b", "a", "\u00e9" * 200, "SURROGATE"):
        w.record("authn_login_fail", "failure", actor=(actor, ["user"]))
    w.close()
    path = os.path.join(trail, "audit-00000001.jsonl")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data.replace(b'"SURROGATE"', b'"x\\ud800y"'))

    out, _ = expect(["audit", "report", "--format", "json", trail], 0)
    by_actor = json.loads(out)["by_actor"]
    by_actor.pop("system", None)  # the writer's own records
    want = {"a": 1, "a\\u0000b": 1, "\u00e9" * 127: 1, "x\\ud800y": 1}
    check(by_actor == want, "report by_actor: %r, expected %r" % (by_actor, want))
    expect(["audit", "report", trail], 0, out_has=["  x\\ud800y\n", "  a\\u0000b\n"])


def run_bounded(args, seconds=10):
    """Run talon with a timeout, so a reader blocked on a FIFO fails the check instead of hanging."""
    try:
        p = subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=seconds)
    except subprocess.TimeoutExpired:
        fail("talon %s did not finish within %d s (blocked opening a FIFO?)" % (" ".join(args), seconds))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def fifo_trail_files(tmp, key, trail):
    """A FIFO named like a trail file is rejected as not a regular file, after
    the real files and in place of the last one, by every reading subcommand."""
    f1 = os.path.join(trail, "audit-00000001.jsonl")
    after = os.path.join(tmp, "fifo-after")
    shutil.copytree(trail, after)
    os.mkfifo(os.path.join(after, "audit-00000002.jsonl"), 0o600)
    only = os.path.join(tmp, "fifo-only")
    os.mkdir(only, 0o700)
    os.mkfifo(os.path.join(only, "audit-00000001.jsonl"), 0o600)
    cases = [["audit", "verify", "--key", key], ["audit", "verify", "--no-key"], ["audit", "query"],
             ["audit", "report"], ["audit", "tail", "-n", "2"], ["audit", "tail", "-f"]]
    for d, fifo in ((after, "audit-00000002.jsonl"), (only, "audit-00000001.jsonl")):
        for args in cases:
            rc, out, err = run_bounded(args + [d])
            check(rc == 2, "talon %s %s with a FIFO: exit %d, expected 2\nstderr: %s" % (" ".join(args), d, rc, err))
            want = "%s/%s: not a regular file" % (d, fifo)
            check(want in err, "talon %s %s: %r not in stderr:\n%s" % (" ".join(args), d, want, err))
    # A FIFO given as the file itself.
    rc, _, err = run_bounded(["audit", "query", os.path.join(only, "audit-00000001.jsonl")])
    check(rc == 2 and "not a regular file" in err, "query of a FIFO path: exit %d, stderr: %s" % (rc, err))

    # tail -f reaches a FIFO as the next file of a rotation: it stops with exit 2.
    follow = os.path.join(tmp, "fifo-follow")
    os.mkdir(follow, 0o700)
    shutil.copy(f1, follow)
    p = subprocess.Popen([CLI, "audit", "tail", "-f", follow], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        check(p.stdout.readline() != b"", "tail -f printed nothing before the FIFO appeared")
        os.mkfifo(os.path.join(follow, "audit-00000002.jsonl"), 0o600)
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            fail("tail -f did not stop within 10 s after a FIFO became the next trail file")
        check(p.returncode == 2, "tail -f at a FIFO: exit %d, expected 2" % p.returncode)
        want = "%s/audit-00000002.jsonl: not a regular file" % follow
        check(want in err.decode(errors="replace"), "tail -f: %r not in stderr:\n%s" % (want, err))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def recovery_causes(tmp):
    """verify names each audit_recovered record; cause=modified (a record
    edited after it was written) fails verification with exit 1."""
    for cause, code, label in (("unclean_shutdown", 0, "note"), ("torn", 0, "note"), ("modified", 1, "WARNING")):
        d = os.path.join(tmp, "recovered-" + cause)
        trail, w = start_trail(d)
        data = {"cause": cause, "torn_bytes": 0 if cause == "unclean_shutdown" else 40,
                "torn_file": None if cause == "unclean_shutdown" else "audit-00000001.jsonl.torn-1",
                "last_seq": 1}
        w.record("audit_recovered", actor=("system", []), data=data)
        w.record("sys_startup", actor=("system", []))
        w.close()
        f1 = os.path.join(trail, "audit-00000001.jsonl")
        out, _ = expect(["audit", "verify", "--key", os.path.join(d, "v.key"), trail], code,
                        out_has=["intact: ", "%s: seq 2 (%s:2)" % (label, f1), "audit_recovered cause=%s" % cause])
        if cause == "modified":
            check("treat this as tampering" in out, "verify of cause=modified: no tampering warning:\n%s" % out)
            check("the edited bytes are in audit-00000001.jsonl.torn-1" in out,
                  "verify of cause=modified does not name the .torn file:\n%s" % out)

        out, err = expect(["audit", "verify", "--key", os.path.join(d, "v.key"), "--format", "json", trail],
                          code, err_has=["%s: seq 2 (%s:2)" % (label, f1)])
        res = json.loads(out)
        check(res["intact"] is (cause != "modified"), "verify --format json of cause=%s: intact %r"
              % (cause, res["intact"]))
        want = {"file": f1, "line": 2, "seq": 2, "cause": cause, "torn_file": data["torn_file"]}
        check(res["recoveries"] == [want], "verify --format json of cause=%s: recoveries %r, expected %r"
              % (cause, res["recoveries"], [want]))
        if cause == "modified":
            check(res["verdict"] == "modified", "cause=modified: verdict %r" % res["verdict"])
            check((res["file"], res["line"], res["seq"]) == (f1, 2, 2),
                  "cause=modified: the result names %s:%s seq %s, not the audit_recovered record"
                  % (res["file"], res["line"], res["seq"]))
            check("treat this as tampering" in res["detail"], "cause=modified: detail %r" % res["detail"])
        else:
            check(res["verdict"] == "intact", "cause=%s: verdict %r" % (cause, res["verdict"]))
    recoveries_across_files(tmp)


def recoveries_across_files(tmp):
    """verify reports every audit_recovered record of a trail of several
    files and hashing chunks, each as FILE:LINE and in trail order."""
    d = os.path.join(tmp, "recovered-files")
    trail, w = start_trail(d)
    want = []

    def recovered(cause, index, line):
        w.record("audit_recovered", actor=("system", []),
                 data={"cause": cause, "torn_bytes": 0, "torn_file": None, "last_seq": w.seq})
        want.append({"file": os.path.join(trail, "audit-%08d.jsonl" % index), "line": line, "seq": w.seq,
                     "cause": cause, "torn_file": None})

    recovered("unclean_shutdown", 1, 2)
    # About 3 MB per file: several chunks of 1 MiB for the hashing threads.
    ref.demo_records(w, 5000)
    recovered("file_removed", 1, 5003)
    w.rotate()
    ref.demo_records(w, 5000, seed=2)
    recovered("unclean_shutdown", 2, 5001)
    w.close()
    out, err = expect(["audit", "verify", "--key", os.path.join(d, "v.key"), "--threads", "3",
                       "--format", "json", trail], 0)
    res = json.loads(out)
    check(res["intact"] is True, "verify of a trail with three recoveries: %s" % out[:500])
    check(res["recoveries"] == want, "recoveries %r, expected %r" % (res["recoveries"], want))
    notes = [line for line in err.splitlines() if "audit_recovered" in line]
    check(len(notes) == 3, "verify --format json printed %d recovery notes on stderr:\n%s" % (len(notes), err))
    for note, rec in zip(notes, want):
        check("seq %d (%s:%d)" % (rec["seq"], rec["file"], rec["line"]) in note,
              "recovery note %r does not name seq %d at %s:%d" % (note, rec["seq"], rec["file"], rec["line"]))


if __name__ == "__main__":
    main()
