#!/usr/bin/python3
"""Hostile connections against the real talon-demo: slowloris clients that
send their request head a byte at a time are cut off once the connection
timeout has passed, while other clients are served, and keep-alive clients
that pause between requests are not cut; 10 000 idle connections do not stop
new ones from being served, and are still usable afterwards.

Set TALON_IDLE_CONNECTIONS to change the 10 000 (TALON_LONG=1 makes it 20 000)."""
import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402

HEAD = b"GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: slowloris\r\nX-Pad: " + b"p" * 200 + b"\r\n\r\n"


def slowloris(port, result, stop):
    """Send HEAD a byte every 0.3 s until the server closes the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    sent = 0
    try:
        while sent < len(HEAD) and not stop.is_set():
            try:
                s.send(HEAD[sent:sent + 1])
            except OSError:
                result["closed"] = True
                return
            sent += 1
            s.settimeout(0.3)
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                result["closed"] = True
                return
            if not data:
                result["closed"] = True
                return
            result["answer"] = data
            return
    finally:
        result["sent"] = sent
        s.close()


def slow_clients(demo):
    stop = threading.Event()
    results = [{} for _ in range(10)]
    threads = [threading.Thread(target=slowloris, args=(demo.port, r, stop)) for r in results]
    for t in threads:
        t.start()
    # Others are served meanwhile, on new and on paused keep-alive connections.
    served = 0
    keep = demo.conn()
    deadline = time.time() + 30
    while any(t.is_alive() for t in threads) and time.time() < deadline:
        status, _, _ = demo.request("GET", "/hello")
        check(status == 200, "GET /hello during the slowloris attack: %d" % status)
        keep.request("GET", "/health")
        r = keep.getresponse()
        r.read()
        check(r.status == 200, "keep-alive GET /health during the attack: %d" % r.status)
        served += 2
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    keep.close()
    for i, r in enumerate(results):
        check(r.get("closed"), "slowloris client %d was not cut off (sent %d of %d bytes, "
              "answer %r)" % (i, r.get("sent", 0), len(HEAD), r.get("answer", b"")[:60]))
        check(r["sent"] < len(HEAD), "slowloris client %d sent its whole head before the cut"
              % i)
    return served


def raise_nofile(n):
    """Raise RLIMIT_NOFILE for n connections (the demo inherits it); returns
    the number of connections the hard limit allows, at most n."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 1024
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return n
        except (ValueError, OSError) as e:
            n = hard - 1024
            print("note: cannot raise the hard RLIMIT_NOFILE %d (%s); testing %d idle "
                  "connections" % (hard, e, n))
            want = hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return n


def idle_connections(n):
    """n idle connections, then new requests; the demo inherits the limit."""
    n = raise_nofile(n)
    check(n >= 10000, "RLIMIT_NOFILE allows only %d idle connections" % n)
    config = ("[server]\nconnection_limit = %d\nconnection_timeout = 300\n"
              "[log.app]\nfile = var/log/app.log\nlevel = warn\n" % (n + 1000))
    with Demo(args=["--threads", "2"], config=config) as demo:
        idle = []
        try:
            for i in range(n):
                s = socket.socket()
                s.settimeout(20)
                s.connect(("127.0.0.1", demo.port))
                idle.append(s)
                if i % 1000 == 999:
                    status, _, _ = demo.request("GET", "/health", timeout=20)
                    check(status == 200, "GET /health with %d idle connections: %d"
                          % (i + 1, status))
            # Every idle connection is accepted by the server, not queued.
            deadline = time.time() + 30
            while True:
                fds = len(os.listdir("/proc/%d/fd" % demo.proc.pid))
                if fds >= n or time.time() > deadline:
                    break
                time.sleep(0.2)
            check(fds >= n, "talon-demo has %d descriptors open, fewer than the %d idle "
                  "connections" % (fds, n))
            for i in range(20):
                status, _, body = demo.request("GET", "/hello", timeout=20)
                check(status == 200, "new request %d with %d idle connections: %d %r"
                      % (i, n, status, body))
            # A sample of the idle connections is still served.
            for s in idle[::max(1, n // 20)]:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = s.recv(4096)
                check(data.startswith(b"HTTP/1.1 200"), "an idle connection got %r" % data[:60])
        finally:
            for s in idle:
                s.close()
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
    return n


def main():
    config = "[server]\nconnection_timeout = 2\n"
    with Demo(args=["--threads", "2"], config=config) as demo:
        served = slow_clients(demo)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        with open(demo.path("var", "log", "app.log"), errors="replace") as f:
            app_log = f.read()
        check("sent no complete request head" in app_log,
              "the cut-off slow clients are not in the app log:\n" + app_log[-2000:])
    default = "20000" if os.environ.get("TALON_LONG") == "1" else "10000"
    n = idle_connections(int(os.environ.get("TALON_IDLE_CONNECTIONS", default)))
    print("ok: 10 slowloris clients cut off while %d requests were served; %d idle "
          "connections did not block new ones" % (served, n))


if __name__ == "__main__":
    main()
