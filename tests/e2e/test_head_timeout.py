#!/usr/bin/python3
"""A request head still incomplete at connection_timeout. When the whole
request line arrived, the client gets 408 and the access log a line with
that request line. Otherwise the connection closes and nothing is logged.
Other clients are served meanwhile."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check, read_response  # noqa: E402


def main():
    with Demo(config="[server]\nconnection_timeout = 2\n") as demo:
        line_sent = socket.create_connection(("127.0.0.1", demo.port), timeout=10)
        line_sent.sendall(b"GET /hello?slow=1 HTTP/1.1\r\nHost: x\r\nX-A: ")
        partial_line = socket.create_connection(("127.0.0.1", demo.port), timeout=10)
        partial_line.sendall(b"GET /hel")
        status, _, _ = demo.request("GET", "/health")
        check(status == 200, "GET /health beside two slow heads: %d" % status)

        reply = read_response(line_sent)
        check(reply.startswith(b"HTTP/1.1 408 "), "slow head with its request line: %r"
              % reply[:120])
        check(b"connection: close" in reply.lower(), "the 408 does not close: %r" % reply[:300])
        rest = partial_line.recv(4096)
        check(rest == b"", "slow head without a whole request line got %r" % rest[:120])
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())

        with open(demo.path("var", "log", "access.log")) as f:
            access = f.read().splitlines()
        check(any('"GET /hello?slow=1 HTTP/1.1" 408 ' in line for line in access),
              "no access-log line for the 408:\n" + "\n".join(access))
        check(not any("/hel " in line or '"- - -"' in line for line in access),
              "the partial request line was logged:\n" + "\n".join(access))
        check(len(access) == 2, "expected 2 access-log lines (the 408 and /health), got:\n"
              + "\n".join(access))
        with open(demo.path("var", "log", "app.log")) as f:
            app_log = f.read()
        check("sent no complete request head within 2 s" in app_log,
              "the slow heads are not counted in the app log:\n" + app_log[-1500:])
    print("ok")


if __name__ == "__main__":
    main()
