#!/usr/bin/python3
"""When talon-demo runs out of file descriptors, accepting pauses: the
server logs one warning per pause instead of retrying accept() in a busy
loop, keeps serving the connections it has, and accepts the waiting ones
once descriptors are free again."""
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check, read_response  # noqa: E402

SERVER_NOFILE = 64  # the demo's own descriptor limit
CLIENTS = 100       # more connections than the demo can hold
EXHAUSTED_SECONDS = 3


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_with_nofile(demo, limit):
    """Start demo with RLIMIT_NOFILE = limit; this process keeps its own limit."""
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, saved[1]))
    try:
        demo.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)


def get(sock):
    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    return read_response(sock)


def main():
    config = "[log.app]\nfile = var/log/app.log\nlevel = warn\n"
    demo = Demo(args=["--threads", "2"], config=config)
    start_with_nofile(demo, SERVER_NOFILE)
    try:
        socks = [socket.create_connection(("127.0.0.1", demo.port), timeout=10)
                 for _ in range(CLIENTS)]
        time.sleep(0.5)
        cpu_before = cpu_seconds(demo.proc.pid)
        time.sleep(EXHAUSTED_SECONDS)
        cpu_used = cpu_seconds(demo.proc.pid) - cpu_before
        print("CPU while out of descriptors: %.2f s in %d s" % (cpu_used, EXHAUSTED_SECONDS))
        check(cpu_used < EXHAUSTED_SECONDS / 3,
              "the server used %.2f s of CPU in %d s while out of descriptors: accept() "
              "is retried in a busy loop" % (cpu_used, EXHAUSTED_SECONDS))

        # The first connection was accepted before the limit: still served.
        reply = get(socks[0])
        check(reply.startswith(b"HTTP/1.1 200"), "accepted connection: %r" % reply[:40])

        # Free descriptors: the last connection, still waiting in the
        # listen queue, is accepted and served.
        for s in socks[1:CLIENTS - 1]:
            s.close()
        reply = get(socks[-1])
        check(reply.startswith(b"HTTP/1.1 200"), "connection accepted after the pause: %r"
              % reply[:40])
        for s in (socks[0], socks[-1]):
            s.close()

        with open(demo.path("var", "log", "app.log"), errors="replace") as f:
            log = f.read()
        check("cannot accept a connection: Too many open files; pausing accepts" in log,
              "app log has no warning about the paused accepts:\n" + log[-2000:])
    finally:
        demo.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
