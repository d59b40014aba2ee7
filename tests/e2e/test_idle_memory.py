#!/usr/bin/python3
"""Memory of idle keep-alive connections.

talon's own engine (the default) keeps no buffer on an idle connection:
requests are read into a buffer of the worker thread, so what stays is the
connection's state, well under 1 KiB. The test checks that bound at the
default max_header_size of 16 KiB.

With engine = libmicrohttpd: libmicrohttpd 0.9.75 zeroes a connection's whole memory pool after every
request, so an idle keep-alive connection keeps the pool resident. talon
sizes the pool max_header_size + 3 KiB (docs/framework.md, "Limits"), so
the resident memory per idle connection follows max_header_size. The test
opens 2000 connections, sends one GET /hello on each and keeps them open.
It then compares talon-demo's VmRSS with the bound for two settings: the
default 16 KiB (pool 19 KiB), and 4 KiB, which stays under 8 KiB."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check, read_response  # noqa: E402

CONNECTIONS = 2000
POOL_MARGIN_KIB = 3 + 2 / 1024
# Measured beyond the pool: about 0.7 KiB per connection for libmicrohttpd's
# connection state and talon's own; the bound leaves 1.5 KiB.
OVERHEAD_KIB = 1.5


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/%d/status" % pid)


def idle_kib_per_connection(demo):
    """Open CONNECTIONS keep-alive connections with one GET /hello each and
    return talon-demo's resident KiB per connection while they are idle."""
    demo.request("GET", "/hello")
    time.sleep(0.3)
    before = rss_kib(demo.proc.pid)
    socks = []
    try:
        request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        for i in range(0, CONNECTIONS, 250):
            batch = []
            for _ in range(250):
                s = socket.create_connection(("127.0.0.1", demo.port), timeout=10)
                s.sendall(request)
                batch.append(s)
            for s in batch:
                reply = read_response(s)
                check(reply.startswith(b"HTTP/1.1 200") and b"connection: close"
                      not in reply.lower(), "connection %d: expected a keep-alive 200, got %r"
                      % (len(socks), reply[:120]))
                socks.append(s)
        time.sleep(1.0)
        after = rss_kib(demo.proc.pid)
        for s in socks[:: CONNECTIONS // 10]:
            s.sendall(request)
            check(read_response(s).startswith(b"HTTP/1.1 200"),
                  "an idle connection did not serve a second request")
    finally:
        for s in socks:
            s.close()
    return (after - before) / CONNECTIONS


NATIVE_BOUND_KIB = 1.0


def main():
    # A sanitizer build pads every allocation (ASan: 27.8 KiB per connection
    # at 16k) and keeps shadow memory, so only a plain build is measured
    # against the bounds. The connections are still opened and reused.
    sanitizer = os.environ.get("TALON_SANITIZE", "")
    for engine, limit_kib in (("native", 16), ("libmicrohttpd", 16), ("libmicrohttpd", 4)):
        config = "[server]\nmax_header_size = %dk\nengine = %s\n" % (limit_kib, engine)
        with Demo(config=config, args=["--threads", "2"]) as demo:
            per = idle_kib_per_connection(demo)
            native = engine == "native"
            bound = NATIVE_BOUND_KIB if native else limit_kib + POOL_MARGIN_KIB + OVERHEAD_KIB
            print("engine %s, max_header_size %dk: %.2f KiB per idle connection (bound %.2f)"
                  % (engine, limit_kib, per, bound))
            if sanitizer:
                print("TALON_SANITIZE=%s: memory bounds not checked" % sanitizer)
                check(demo.stop() == 0, "talon-demo did not exit cleanly")
                continue
            check(per <= bound, "engine %s, max_header_size %dk: %.2f KiB resident per idle "
                  "keep-alive connection, expected at most %.2f KiB"
                  % (engine, limit_kib, per, bound))
            if not native:
                check(per >= limit_kib, "max_header_size %dk: only %.2f KiB per idle "
                      "connection; libmicrohttpd zeroes the whole pool after each request, so "
                      "less than max_header_size means the measurement missed the connections"
                      % (limit_kib, per))
            if limit_kib == 4 or native:
                check(per <= 8, "engine %s, max_header_size %dk: %.2f KiB per idle connection, "
                      "expected at most 8 KiB" % (engine, limit_kib, per))
            rc = demo.stop()
            check(rc == 0, "talon-demo exited with %r" % rc)
    print("ok")


if __name__ == "__main__":
    main()
