#!/usr/bin/python3
"""Request heads that fit max_header_size but hold many small items, which
libmicrohttpd 0.9.75 parses into its per-connection memory pool: a query of
1000 parameters (5.9 KB) and a Cookie header of 1500 pairs. Unless talon
handles them, the query gets no response and hangs until the connection
timeout, the cookies get a close without a response, and both stay counted
in flight. The stop then waits out the whole drain timeout and claims that
every request had finished.

The test expects the query to be served (talon parses it from the raw
target), the cookies to get a JSON 431 and a closed connection, a flood of
both to leave nothing in flight, and the stop to log that every in-flight
request finished."""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import call, login  # noqa: E402

QUERY = b"&".join(b"a=%d" % i for i in range(1000))
COOKIE = b"; ".join(b"c%d=1" % i for i in range(1500))


def send(port, data, timeout=10):
    """Send one request and read until the server closes or goes quiet."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
    except socket.timeout:
        pass
    finally:
        s.close()
    return out


def split(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith(b"HTTP/1.1 ") else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return status, headers, body


def flood(port, data, count):
    """Send data on count fresh connections and close each at once."""
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(data)
        s.close()


def main():
    with Demo(config="[server]\ndrain_timeout = 3\n") as demo:
        # Many query parameters: served, and talon still reads the query.
        resp = send(demo.port, b"GET /notes?" + QUERY + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = split(resp)
        check(status == 200, "1000 query parameters: expected 200, got %r" % resp[:200])
        check(json.loads(body) == {"notes": []}, "1000 query parameters: body %r" % body)
        token = login(demo, "carol")
        # GET /audit rejects parameters it does not know, so a 400 naming "a"
        # shows that talon read the whole query itself.
        status, _, body = call(demo, "GET", "/audit?limit=2&" + QUERY.decode(), token=token)
        check(status == 400 and 'unknown query parameter "a"' in body.get("description", ""),
              "GET /audit with limit=2 and 1000 more parameters: got %d %r" % (status, body))

        # Many cookies: a JSON 431 and a closed connection.
        resp = send(demo.port, b"GET /notes HTTP/1.1\r\nHost: x\r\nCookie: " + COOKIE
                    + b"\r\n\r\n")
        status, headers, body = split(resp)
        check(status == 431, "1500 cookies: expected 431, got %r" % resp[:200])
        check(headers.get("content-type") == "application/json"
              and headers.get("connection") == "close",
              "1500 cookies: headers %r" % headers)
        err = json.loads(body)
        check(err["title"] == "Request Header Fields Too Large" and "cookies" in err["description"],
              "1500 cookies: body %r" % err)

        # A flood of both leaves nothing in flight.
        flood(demo.port, b"GET /notes?" + QUERY + b" HTTP/1.1\r\nHost: x\r\n\r\n", 40)
        flood(demo.port, b"GET /notes HTTP/1.1\r\nHost: x\r\nCookie: " + COOKIE + b"\r\n\r\n", 40)
        status, _, _ = demo.request("GET", "/health")
        check(status == 200, "GET /health after the flood: %d" % status)
        rc = demo.stop()
        check(rc == 0, "talon-demo exited with %r" % rc)
        with open(demo.path("var", "log", "app.log")) as f:
            log = f.read()
        check("still in flight" not in log,
              "requests left in flight after the flood:\n" + log[-2000:])
        check("stopped: every in-flight request finished" in log,
              "no clean stop in the app log:\n" + log[-2000:])
        with open(demo.path("var", "log", "access.log")) as f:
            access = f.read()
        check('"- /notes HTTP/-" 431 ' in access,
              "the 431 for the cookies is not in the access log:\n" + access[-1500:])
    print("ok")


if __name__ == "__main__":
    main()
