#!/usr/bin/python3
"""Under load from several client threads, the access log has exactly one
whole line per completed request, across a logrotate-style rename + SIGHUP
and across size rotation (with gzip)."""
import glob
import gzip
import http.client
import os
import re
import signal
import stat
import threading

from talon_e2e import Demo, check, fail

THREADS = 4
PER_THREAD = 750
COMBINED = re.compile(
    rb'^\S+ - \S+ \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
    rb'"(GET|HEAD) /[^"]*" \d{3} \d+ "[^"]*" "[^"]*"$')


def run_clients(demo, on_progress=None):
    """Send at least THREADS x PER_THREAD requests on keep-alive connections.
    on_progress(done) runs in the main thread meanwhile; each client keeps
    going until it has sent 100 requests after on_progress returned, so
    requests run on both sides of whatever it does. Returns the number of
    completed responses."""
    done = [0] * THREADS
    errors = []
    progressed = threading.Event()
    if on_progress is None:
        progressed.set()

    def client(idx):
        conn = demo.conn()
        after = 0
        try:
            i = 0
            while i < PER_THREAD or after < 100:
                if i >= 20 * PER_THREAD:
                    errors.append("client %d: on_progress did not return" % idx)
                    break
                target = "/hello?t=%d&i=%d" % (idx, i) if i % 10 else "/missing/%d/%d" % (idx, i)
                conn.request("GET", target, headers={"User-Agent": "load-%d" % idx})
                r = conn.getresponse()
                r.read()
                done[idx] += 1
                i += 1
                if progressed.is_set():
                    after += 1
        except (OSError, http.client.HTTPException) as e:
            errors.append("client %d after %d requests: %r" % (idx, done[idx], e))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    if on_progress:
        on_progress(done)
        progressed.set()
    for t in threads:
        t.join(120)
    if errors:
        fail("; ".join(errors))
    return sum(done)


def wait_for(done, count):
    while sum(done) < count:
        threading.Event().wait(0.01)


def read_log_lines(paths):
    lines = []
    for p in paths:
        opener = gzip.open if p.endswith(".gz") else open
        with opener(p, "rb") as f:
            data = f.read()
        if not data:
            continue
        check(data.endswith(b"\n"), "%s ends in a partial line: %r" % (p, data[-80:]))
        lines += data.split(b"\n")[:-1]
    return lines


def check_whole_lines(lines, expected, label):
    for line in lines:
        if not COMBINED.match(line):
            fail("%s: split or garbled line: %r" % (label, line))
    check(len(lines) == expected,
          "%s: %d access-log lines for %d completed requests" % (label, len(lines), expected))
    uniq = set(lines)
    check(len(uniq) == len(lines), "%s: duplicated lines" % label)


def test_sighup_reopen():
    # A short flush interval puts lines in the file before the rename, so
    # both files get some.
    config = "[log.access]\nflush_interval_ms = 5\n"
    with Demo(config=config) as demo:
        log = demo.path("var", "log", "access.log")
        moved = log + ".moved"

        def rotate_midway(done):
            wait_for(done, THREADS * PER_THREAD // 3)
            # Rename only once some lines are in the file, as logrotate would
            # find them, so both files get lines.
            for _ in range(500):
                if os.path.getsize(log) > 0:
                    break
                threading.Event().wait(0.01)
            os.rename(log, moved)
            demo.proc.send_signal(signal.SIGHUP)

        total = run_clients(demo, rotate_midway)
        check(total >= THREADS * PER_THREAD, "only %d requests completed" % total)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        check(os.path.exists(log), "SIGHUP did not reopen access.log")
        mode = stat.S_IMODE(os.stat(log).st_mode)
        check(mode == 0o640, "reopened access.log has mode %o, expected 640" % mode)
        before = read_log_lines([moved])
        after = read_log_lines([log])
        check(len(before) > 0 and len(after) > 0,
              "lines before/after SIGHUP: %d/%d" % (len(before), len(after)))
        check_whole_lines(before + after, total, "SIGHUP")


def test_size_rotation():
    # Rotation happens between write batches: small, frequent batches give
    # several rotations in a short run.
    config = ("[log.access]\nrotate_size = 32k\nrotate_keep = 1000\nrotate_gzip = true\n"
              "flush_interval_ms = 5\nbuffer_size = 4k\n")
    with Demo(config=config) as demo:
        total = run_clients(demo)
        check(total == THREADS * PER_THREAD, "only %d requests completed" % total)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        log = demo.path("var", "log", "access.log")
        rotated = glob.glob(log + ".*")
        check(len(rotated) >= 3, "expected several rotated files, found %r" % rotated)
        for p in rotated:
            check(re.search(r"\.log\.\d+(\.gz)?$", p) is not None, "unexpected file %s" % p)
            mode = stat.S_IMODE(os.stat(p).st_mode)
            check(mode == 0o640, "%s has mode %o, expected 640" % (p, mode))
        # Oldest first: highest number first, the live file last.
        def number(p):
            return int(re.search(r"\.log\.(\d+)", p).group(1))
        paths = sorted(rotated, key=number, reverse=True) + [log]
        lines = read_log_lines(paths)
        check_whole_lines(lines, total, "size rotation")


def main():
    test_sighup_reopen()
    test_size_rotation()
    print("ok")


if __name__ == "__main__":
    main()
