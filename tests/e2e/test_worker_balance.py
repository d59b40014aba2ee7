#!/usr/bin/python3
"""Connections opened in a burst are spread evenly over the engine's worker
threads. Each libmicrohttpd worker thread has its own epoll instance, so
/proc/<pid>/fdinfo shows how many connection sockets each one watches. When
every worker polled the listening socket, one worker could take up to 10
connections per wake-up and serve them alone while the other idled."""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check, read_response  # noqa: E402

CONNECTIONS = 16


def socket_inodes(pid):
    """Map each socket descriptor of pid to its inode."""
    inodes = {}
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes[int(name)] = int(m.group(1))
    return inodes


def epoll_watch_lists(pid):
    """The descriptors watched by each epoll instance of pid, one set per instance."""
    lists = []
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, name)) != "anon_inode:[eventpoll]":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, name)) as f:
                text = f.read()
        except OSError:
            continue
        lists.append({int(fd) for fd in re.findall(r"^tfd:\s+(\d+)", text, re.M)})
    return lists


def connections_per_worker(pid, count):
    """How many of the server's connection sockets each epoll instance watches.
    The listening socket (the lowest socket) is left out."""
    sockets = socket_inodes(pid)
    listener = min(sockets)
    conns = set(sockets) - {listener}
    check(len(conns) >= count, "server has %d connection sockets, expected %d"
          % (len(conns), count))
    return sorted(len(watched & conns) for watched in epoll_watch_lists(pid)
                  if watched & conns)


def main():
    with Demo(args=["--threads", "2"]) as demo:
        # Open every connection before any request, so they wait in the
        # listen backlog together, as a load generator's burst does.
        socks = [socket.create_connection(("127.0.0.1", demo.port), timeout=10)
                 for _ in range(CONNECTIONS)]
        for s in socks:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        for i, s in enumerate(socks):
            reply = read_response(s)
            check(reply.startswith(b"HTTP/1.1 200"), "connection %d: %r" % (i, reply[:40]))

        counts = connections_per_worker(demo.proc.pid, CONNECTIONS)
        print("connections per worker thread: %s" % counts)
        check(len(counts) == 2, "%d worker threads watch connections, expected 2: %s"
              % (len(counts), counts))
        check(sum(counts) == CONNECTIONS, "workers watch %d connections, expected %d"
              % (sum(counts), CONNECTIONS))
        check(counts[1] - counts[0] <= 2, "connections per worker %s: uneven by more than 2"
              % counts)
        for s in socks:
            s.close()
    print("ok")


if __name__ == "__main__":
    main()
