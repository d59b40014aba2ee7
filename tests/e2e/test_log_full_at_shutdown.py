#!/usr/bin/python3
"""Disk full at shutdown: the access log fills a 64 KiB tmpfs by itself, so
the write that crosses the limit stops midway through a batch, and the demo
is stopped while the disk is still full. Every request is then either a
whole line in the file or counted in the stderr message 'giving up at
shutdown ... N records dropped in total', and none is both. After space
returns, the next start ends the unfinished line with a newline and warns,
so its first line is whole. Needs root to
mount the tmpfs; without it the test is skipped."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402

REQUESTS = 2000  # about 110 KiB of combined lines, more than the tmpfs can store


def restart_after_partial_line(demo, log_dir, access):
    """Free space and start again: the unfinished line left by the full disk
    must end before the first new line, which must be whole."""
    subprocess.run(["mount", "-o", "remount,size=1m", log_dir], check=True)
    with open(access, "rb") as f:
        before = f.read()
    if before.endswith(b"\n"):
        # The cut fell on a line boundary in this run: leave a fragment by hand.
        before += b'127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /cut'
        with open(access, "wb") as f:
            f.write(before)
    fragment = before[before.rfind(b"\n") + 1:]
    stderr_before = len(demo.read_stderr())

    demo.start()
    conn = demo.conn()
    conn.request("GET", "/hello?after=restart")
    conn.getresponse().read()
    conn.close()
    check(demo.stop() == 0, "talon-demo did not exit 0 after the restart; stderr:\n" +
          demo.read_stderr())

    with open(access, "rb") as f:
        after = f.read()
    new_lines = after[len(before):].split(b"\n")
    check(new_lines[0] == b"", "the first line after the restart was joined to the unfinished "
          "line %r: %r" % (fragment, after[len(before) - len(fragment):][:300]))
    check(len(new_lines) == 3 and b'"GET /hello?after=restart HTTP/1.1" 200' in new_lines[1],
          "the restart's access log line is not whole: %r" % new_lines)
    text = demo.read_stderr()[stderr_before:]
    check("access.log ended with an unfinished line" in text,
          "no warning about the unfinished line; stderr:\n" + text[-2000:])
    print("restart after the full disk: unfinished line %d bytes, ended with a newline"
          % len(fragment))


def main():
    config = ("[log.app]\nfile = -\nlevel = info\n"
              "[log.access]\nfile = var/log/access.log\nbuffer_size = 4k\nmax_buffered = 16k\n"
              "flush_interval_ms = 100\n")
    demo = Demo(config=config)
    log_dir = demo.path("var", "log")
    os.makedirs(log_dir)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0750", "tmpfs",
                              log_dir], stderr=subprocess.PIPE)
    if mounted.returncode != 0:
        print("skipped: cannot mount a tmpfs: %s" % mounted.stderr.decode().strip())
        demo.cleanup()
        return
    access = os.path.join(log_dir, "access.log")
    try:
        demo.start()
        conn = demo.conn()
        for i in range(REQUESTS):
            conn.request("GET", "/hello?n=%d" % i)
            response = conn.getresponse()
            response.read()
            check(response.status == 200, "GET /hello?n=%d: %d" % (i, response.status))
        conn.close()
        deadline = time.time() + 10
        while "No space left on device" not in demo.read_stderr() and time.time() < deadline:
            time.sleep(0.1)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        text = demo.read_stderr()
        given_up = re.findall(r"access\.log: giving up at shutdown after write errors "
                              r"\(No space left on device\); (\d+) records dropped in total", text)
        check(len(given_up) == 1, "no 'giving up at shutdown' message; stderr:\n" + text[-3000:])
        dropped = int(given_up[0])
        with open(access, "rb") as f:
            whole = f.read().count(b"\n")
        check(whole + dropped == REQUESTS,
              "%d whole lines in the file and %d reported dropped, for %d requests"
              % (whole, dropped, REQUESTS))
        print("disk full at shutdown: %d whole lines, %d dropped and reported" % (whole, dropped))
        restart_after_partial_line(demo, log_dir, access)
    finally:
        if demo.proc is not None and demo.proc.poll() is None:
            demo.kill9()
        subprocess.run(["umount", log_dir])
        demo.cleanup()


if __name__ == "__main__":
    main()
