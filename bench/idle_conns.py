#!/usr/bin/python3
"""Open N keep-alive connections to a server, send one GET on each, read the
response, and keep every connection open until stdin closes or a line
arrives on it.

Prints "READY <open> <failed>" once all connections got their response (or
failed), so a caller can read the server's memory while they sit idle.
Usage: idle_conns.py HOST PORT PATH N
"""
import resource
import select
import socket
import sys
import time

BATCH = 500


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        sys.exit("idle_conns: RLIMIT_NOFILE is %d, %d needed; raise the hard limit (ulimit -Hn)"
                 % (soft, need))


def read_response(sock, deadline):
    """Read one small response head plus body; return the bytes read."""
    data = b""
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(body) >= length:
                break
    return data


def main():
    host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    raise_nofile(count + 64)
    request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode()

    open_socks, failed = [], 0
    errors = {}
    for start in range(0, count, BATCH):
        batch = []
        for _ in range(min(BATCH, count - start)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(10)
            try:
                sock.connect((host, port))
                sock.sendall(request)
                batch.append(sock)
            except OSError as e:
                errors[str(e)] = errors.get(str(e), 0) + 1
                failed += 1
                sock.close()

        deadline = time.monotonic() + 10
        for sock in batch:
            try:
                response = read_response(sock, deadline)
            except OSError as e:
                response = b""
                errors[str(e)] = errors.get(str(e), 0) + 1
            if response.startswith(b"HTTP/1.1 200") and b"connection: close" not in response.lower():
                open_socks.append(sock)
            else:
                if response:
                    first = response.split(b"\r\n", 1)[0].decode(errors="replace")
                    errors[first] = errors.get(first, 0) + 1
                failed += 1
                sock.close()

    for message, n in errors.items():
        print("idle_conns: %d x %s" % (n, message), file=sys.stderr)
    print("READY %d %d" % (len(open_socks), failed), flush=True)
    # Stay idle; count the connections the server closes meanwhile.
    select.select([sys.stdin], [], [])
    alive = 0
    for sock in open_socks:
        sock.setblocking(False)
        try:
            alive += 1 if sock.recv(1) != b"" else 0
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    print("ALIVE %d" % alive, flush=True)


if __name__ == "__main__":
    main()
