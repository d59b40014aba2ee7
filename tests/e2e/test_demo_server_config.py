#!/usr/bin/python3
"""talon-demo checks every [server] value while it parses the configuration,
with talon_app_serve()'s own check. An invalid value exits 2 with FILE:LINE
before the logs, the audit trail or its keys are created. The ranges in the
messages are the ones the server enforces, and a server with the boundary
values starts."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import DEMO, Demo, check  # noqa: E402

# (line 2 of [server], text expected in the error)
INVALID = [
    ("max_header_size = 10", "between 1024 bytes and 1 MiB"),
    ("max_header_size = 1023", "between 1024 bytes and 1 MiB"),
    ("max_header_size = 1025k", "between 1024 bytes and 1 MiB"),
    ("trusted_proxies = 10.0.0.0/33", "invalid trusted proxy \"10.0.0.0/33\""),
    ("trusted_proxies = ::1/129", "invalid trusted proxy \"::1/129\""),
    ("trusted_proxies = 10.0.0.1, bogus", "invalid trusted proxy \"bogus\""),
    ("connection_limit = 0", "from 1 to 1000000"),
    ("connection_limit = 1000001", "from 1 to 1000000"),
    ("connection_limit = 99999999999", "from 1 to 1000000"),
    ("drain_timeout = 0", "between 1s and 1d; leave the key out for the 30s default"),
    ("drain_timeout = 2d", "at most 1d"),
    ("threads = 1025", "from 0 to 1024"),
    ("threads = -1", "from 0 to 1024"),
    ("engine = nginx", "it must be native or libmicrohttpd"),
    ("listen = garbage", "invalid listen address"),
    ("listen = 127.0.0.1:99999", "invalid listen address"),
    ("trusted_proxies = " + "10.0.0.1," * 120, "at most 1023 are allowed"),
]

# Valid values at the ends of each range, each followed by an invalid line
# 3, so that the error at line 3 shows that line 2 was accepted.
BOUNDARY = [
    "max_header_size = 1024",
    "max_header_size = 1M",
    "connection_limit = 1",
    "connection_limit = 1000000",
    "threads = 0",
    "threads = 1024",
    "trusted_proxies = 10.0.0.0/32, ::1/128, 0.0.0.0/0",
]


def run_demo(work, config):
    with open(os.path.join(work, "c.ini"), "w") as f:
        f.write(config)
    r = subprocess.run([DEMO, "--config", "c.ini", "--listen", "127.0.0.1:0"], cwd=work,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return r.returncode, r.stdout.decode(errors="replace")


def main():
    work = tempfile.mkdtemp(prefix="talon-e2e-")
    for line, expected in INVALID:
        key = line.split(" ")[0]
        rc, out = run_demo(work, "[server]\n%s\n" % line)
        check(rc == 2, "%s: exit %d, expected 2\n%s" % (line, rc, out))
        check(out.startswith("talon-demo: c.ini:2: [server] %s: " % key),
              "%s: the error does not name c.ini:2 and the key:\n%s" % (line, out))
        check(expected in out, "%s: expected %r in:\n%s" % (line, expected, out))
        created = sorted(set(os.listdir(work)) - {"c.ini"})
        check(created == [], "%s: the failed start created %s" % (line, created))

    for line in BOUNDARY:
        rc, out = run_demo(work, "[server]\n%s\nthreads = x\n" % line)
        check(rc == 2 and out.startswith("talon-demo: c.ini:3: [server] threads: "),
              "%s: not accepted (expected the error at line 3), exit %d:\n%s" % (line, rc, out))
    shutil.rmtree(work, ignore_errors=True)

    config = ("[server]\nmax_header_size = 1024\nconnection_limit = 1\n"
              "trusted_proxies = ::1/128\n")
    with Demo(config=config) as demo:
        status, _, _ = demo.request("GET", "/health")
        check(status == 200, "server with boundary values: GET /health got %d" % status)
        status, _, _ = demo.request("GET", "/hello", headers={"X-Padding": "a" * 1100})
        check(status == 431, "max_header_size = 1024: a 1.1 KB head got %d, expected 431"
              % status)
    print("ok")


if __name__ == "__main__":
    main()
