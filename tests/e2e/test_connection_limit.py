#!/usr/bin/python3
"""connection_limit: the connection over the limit gets a 503 with a JSON
body and Retry-After, and the server recovers once connections close. The
decision is made once per connection when it is accepted, so connections
accepted within the limit keep being served while later connections, idle
or not, are over it. A burst far past the hard cap (limit + limit/8 + 16)
leaves the server serving and able to stop."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402

# One engine thread accepts connections in the order they were opened.
ONE_THREAD = ["--threads", "1"]


def get_status(conn, what):
    """Send GET /health on conn and return the response status."""
    conn.request("GET", "/health")
    r = conn.getresponse()
    r.read()
    print("%s: %d" % (what, r.status))
    return r.status


def over_limit_gets_503():
    with Demo(config="[server]\nconnection_limit = 4\n") as demo:
        held = []
        for i in range(4):
            c = demo.conn()
            status = get_status(c, "connection %d" % i)
            check(status == 200, "connection %d under the limit: %d" % (i, status))
            held.append(c)

        status, headers, body = demo.request("GET", "/health")
        check(status == 503, "fifth connection: status %d, expected 503" % status)
        doc = json.loads(body)
        check("limit of 4 connections" in doc.get("description", ""), "503 body: %r" % doc)
        check(headers.get("retry-after") == "1", "Retry-After: %r" % headers.get("retry-after"))
        check(headers.get("connection") == "close", "the 503 must close its connection")

        for c in held:
            c.close()
        deadline = time.time() + 10
        status = None
        while time.time() < deadline:
            status, _, _ = demo.request("GET", "/health")
            if status == 200:
                break
            time.sleep(0.1)
        check(status == 200, "after closing the connections: status %r" % status)
        code = demo.stop()
        check(code == 0, "exit code %d" % code)


def idle_connections_keep_admitted_one():
    """A keep-alive client within the limit keeps being served after idle
    connections that send nothing fill the limit."""
    with Demo(args=ONE_THREAD, config="[server]\nconnection_limit = 5\n") as demo:
        client = demo.conn()
        check(get_status(client, "keep-alive request 1") == 200,
              "the first request of the keep-alive client was not served")

        idle = []
        for _ in range(5):
            c = demo.conn()
            c.connect()
            idle.append(c)
        # Accepted after the idle ones, so its 503 also shows that the
        # server has accepted them.
        status, _, _ = demo.request("GET", "/health")
        check(status == 503, "a new connection with 6 open and a limit of 5: status %d, "
              "expected 503" % status)

        check(get_status(client, "keep-alive request 2") == 200,
              "the keep-alive client accepted within the limit got a 503 after 5 idle "
              "connections were opened")
        for i, c in enumerate(idle):
            expected = 200 if i < 4 else 503
            status = get_status(c, "idle connection %d" % i)
            check(status == expected, "idle connection %d (accepted as connection %d of a "
                  "limit of 5): status %d, expected %d" % (i, i + 2, status, expected))
        for c in idle:
            c.close()
        client.close()
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())


def burst_serves_first_within_limit():
    """Of 12 connections opened at once, the first 5 are served."""
    with Demo(args=ONE_THREAD, config="[server]\nconnection_limit = 5\n") as demo:
        conns = []
        for _ in range(12):
            c = demo.conn()
            c.connect()
            conns.append(c)
        statuses = [get_status(c, "burst connection %d" % i) for i, c in enumerate(conns)]
        check(statuses[:5] == [200] * 5, "the first 5 of 12 connections with a limit of 5: "
              "statuses %r, expected 200 each" % statuses[:5])
        check(statuses[5:] == [503] * 7, "the last 7 of 12 connections with a limit of 5: "
              "statuses %r, expected 503 each" % statuses[5:])
        # The connections within the limit stay served.
        for i, c in enumerate(conns[:5]):
            status = get_status(c, "burst connection %d again" % i)
            check(status == 200, "second request on burst connection %d: status %d"
                  % (i, status))
        for c in conns:
            c.close()
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())


def burst_past_hard_cap_recovers():
    """100 connections at once with a limit of 10 (hard cap 27): the server
    still serves once they close, and exits 0 on SIGTERM."""
    with Demo(config="[server]\nconnection_limit = 10\n") as demo:
        socks = [socket.create_connection(("127.0.0.1", demo.port), timeout=5)
                 for _ in range(100)]
        time.sleep(1)
        for s in socks:
            s.close()
        deadline = time.time() + 5
        status = None
        while time.time() < deadline and status != 200:
            try:
                c = demo.conn(timeout=2)
                status = get_status(c, "after the burst")
                c.close()
            except OSError as e:
                print("after the burst: %r" % e)
                time.sleep(0.2)
        check(status == 200, "GET /health after a burst past the hard cap: %r" % status)
        check(demo.stop(timeout=20) == 0, "talon-demo did not exit 0 after the burst; stderr:\n"
              + demo.read_stderr())
        with open(demo.path("var", "log", "app.log"), errors="replace") as f:
            log = f.read()
        check("closed a new connection without a response: 27 connections are open" in log,
              "no warning about the connections closed past the hard cap:\n" + log[-2000:])


def main():
    burst_past_hard_cap_recovers()
    over_limit_gets_503()
    idle_connections_keep_admitted_one()
    burst_serves_first_within_limit()
    print("ok")


if __name__ == "__main__":
    main()
