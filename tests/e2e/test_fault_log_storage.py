#!/usr/bin/python3
"""Faults under the access log of the real talon-demo.

Disk full: the test mounts a 128 KiB tmpfs on var/log (it needs root; without
mount it falls back to prlimit --fsize on the running demo and says so) and
fills it. Records that do not fit in memory are dropped, counted and
reported in the app log; every request is either in the file or counted as
dropped; no line is partial; writing resumes when space returns.

Deleted and rotated away: with no SIGHUP, lines logged after the log file
or its whole directory is deleted reach a recreated file, and lines logged
after the file is renamed reach the renamed file; none is lost."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check, fail  # noqa: E402

COMBINED = re.compile(
    rb'^\S+ - \S+ \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
    rb'"GET (/hello\?\w+=\d+) HTTP/1\.1" 200 \d+ "-" "-"$')


def send(demo, kind, count):
    for i in range(count):
        status, _, _ = demo.request("GET", "/hello?%s=%d" % (kind, i))
        check(status == 200, "GET /hello?%s=%d: %d" % (kind, i, status))


def targets(*paths):
    """Targets of the access lines in paths; fails on a line that is not whole."""
    out = []
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        check(data == b"" or data.endswith(b"\n"), "%s ends with a partial line: %r"
              % (path, data[-100:]))
        for line in data.split(b"\n")[:-1]:
            m = COMBINED.match(line)
            check(m is not None, "%s has a broken line: %r" % (path, line[:200]))
            out.append(m.group(1).decode())
    return out


def settled(path, want, seconds=10):
    """Targets of path once it has want lines (or after seconds)."""
    deadline = time.time() + seconds
    while True:
        got = targets(path)
        if len(got) >= want or time.time() > deadline:
            return got
        time.sleep(0.05)


def wait_for(demo, pattern, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        text = demo.read_stderr()
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    fail("the app log never said %r; stderr:\n%s" % (pattern, demo.read_stderr()[-3000:]))


def fill(path):
    """Write zeros into path until the filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def disk_full():
    config = ("[log.app]\nfile = -\nlevel = info\n"
              "[log.access]\nfile = var/log/access.log\nbuffer_size = 4k\nmax_buffered = 16k\n"
              "flush_interval_ms = 100\n")
    demo = Demo(config=config)
    log_dir = demo.path("var", "log")
    os.makedirs(log_dir)
    # TALON_FAULT_FSIZE=1 takes the fallback even where mount works.
    if os.environ.get("TALON_FAULT_FSIZE"):
        mounted = subprocess.CompletedProcess([], 1, stderr=b"TALON_FAULT_FSIZE is set")
    else:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k,mode=0750", "tmpfs",
                                  log_dir], stderr=subprocess.PIPE)
    method = "tmpfs"
    if mounted.returncode != 0:
        method = "prlimit --fsize"
        print("note: cannot mount a tmpfs (%s); using prlimit --fsize on the running demo "
              "instead" % mounted.stderr.decode().strip())
    access = os.path.join(log_dir, "access.log")
    filler = os.path.join(log_dir, "filler")
    try:
        demo.start()
        send(demo, "before", 20)
        check(len(settled(access, 20)) == 20, "the first 20 lines were not written")
        if method == "tmpfs":
            fill(filler)
        else:
            size = os.path.getsize(access)
            subprocess.run(["prlimit", "--pid", str(demo.proc.pid), "--fsize=%d:unlimited" % size],
                           check=True)
        send(demo, "full", 400)
        text = wait_for(demo, r"log sink \S*access\.log: write failed: (No space left on device|"
                        r"File too large)")
        text = wait_for(demo, r"log sink \S*access\.log: dropped \d+ records")
        check(demo.proc.poll() is None, "talon-demo died on a full disk")
        if method == "tmpfs":
            os.unlink(filler)
        else:
            subprocess.run(["prlimit", "--pid", str(demo.proc.pid), "--fsize=unlimited:unlimited"],
                           check=True)
        wait_for(demo, r"log sink \S*access\.log: writing resumed after \d+ failed attempts")
        send(demo, "after", 20)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        text = demo.read_stderr()
        dropped = max(int(n) for n in re.findall(r"access\.log: dropped \d+ records since the "
                                                 r"last report \((\d+) in total\)", text))
        got = targets(access)
        for kind in ("before", "after"):
            missing = [i for i in range(20) if "/hello?%s=%d" % (kind, i) not in got]
            check(not missing, "%s lines missing: %r" % (kind, missing))
        full = [t for t in got if "full=" in t]
        check(len(set(full)) == len(full), "a line was written twice")
        check(len(full) + dropped == 400, "%d lines written and %d reported dropped, for 400 "
              "requests: some were lost without a count" % (len(full), dropped))
        print("disk full (%s): %d written, %d dropped and reported, writing resumed"
              % (method, len(full), dropped))
    finally:
        if demo.proc is not None and demo.proc.poll() is None:
            demo.kill9()
        if method == "tmpfs":
            subprocess.run(["umount", log_dir])
        demo.cleanup()


def deleted_and_moved():
    config = ("[log.app]\nfile = var/app.log\nlevel = info\n"
              "[log.access]\nfile = var/log/access.log\nflush_interval_ms = 100\n")
    with Demo(config=config) as demo:
        access = demo.path("var", "log", "access.log")
        send(demo, "first", 10)
        check(len(settled(access, 10)) == 10, "the first lines were not written")

        os.unlink(access)                     # the file alone, no signal
        send(demo, "unlinked", 10)
        got = settled(access, 10)
        # Sorted: the access log follows completion order, and the completion
        # of one short connection can come after that of the next.
        check(sorted(got) == sorted("/hello?unlinked=%d" % i for i in range(10)),
              "after the file was deleted: %r" % got)

        shutil.rmtree(demo.path("var", "log"))  # the whole directory, no signal
        send(demo, "rmdir", 10)
        got = settled(access, 10)
        # Sorted: the access log follows completion order, and the completion
        # of one short connection can come after that of the next.
        check(sorted(got) == sorted("/hello?rmdir=%d" % i for i in range(10)),
              "after the directory was deleted: %r" % got)

        moved = access + ".1"
        os.rename(access, moved)              # rotated away, no signal yet
        send(demo, "renamed", 10)
        settled(moved, 20)  # the 10 lines of before the rename, and these
        demo.proc.send_signal(signal.SIGHUP)  # logrotate's postrotate
        deadline = time.time() + 10
        while not os.path.exists(access) and time.time() < deadline:
            time.sleep(0.05)
        send(demo, "reopened", 10)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        old, new = targets(moved), targets(access)
        check(all("/hello?renamed=%d" % i in old + new for i in range(10)),
              "lines logged after the rename were lost: %r / %r" % (old, new))
        check(new[-10:] == ["/hello?reopened=%d" % i for i in range(10)],
              "after SIGHUP the new file has %r" % new)
        check(all("renamed=" in t for t in new[:-10]), "the new file has %r" % new)
        for path in (access, moved):
            mode = os.stat(path).st_mode & 0o777
            check(mode == 0o640, "%s has mode %o, expected 640" % (path, mode))
        with open(demo.path("var", "app.log"), errors="replace") as f:
            app_log = f.read()
        check(app_log.count("the open file was deleted") >= 2,
              "the reopens after deletion are not in the app log:\n" + app_log[-2000:])
    print("deleted file, deleted directory and renamed file: no line lost")


def main():
    disk_full()
    deleted_and_moved()
    print("ok")


if __name__ == "__main__":
    main()
