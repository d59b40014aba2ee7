#!/usr/bin/python3
"""Request heads that fit max_header_size but hold many small items, which
libmicrohttpd 0.9.75 parses into its per-connection memory pool
(max_header_size + 3 KiB): a query of 1000 parameters (5.9 KB), a Cookie
header of 400 pairs (3.3 KB) and one of 1500 pairs (12 KB). Unless talon
handles them, the query gets no response and hangs until the connection
timeout, the 400 cookies get a close without a response, and both stay
counted in flight. The stop then waits out the whole drain timeout and
claims that every request had finished.

With engine = libmicrohttpd the test expects the query to be served (talon
parses it from the raw target), the 400 cookies to get talon's JSON 431 and
a closed connection, the 1500 cookies (whose copy does not fit the pool)
libmicrohttpd's own 431, an access-log line with status 431 for both, a
flood of all three to leave nothing in flight, and the stop to log that
every in-flight request finished. talon's own engine has no pool: it serves
all three heads (they are within max_header_size), with the same checks of
the flood and the stop."""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check, read_response  # noqa: E402
from talon_e2e import split_response as split  # noqa: E402
from audit_e2e import call, login  # noqa: E402

QUERY = b"&".join(b"a=%d" % i for i in range(1000))
COOKIE = b"; ".join(b"c%d=1" % i for i in range(400))
BIG_COOKIE = b"; ".join(b"c%d=1" % i for i in range(1500))


def send(port, data, timeout=10):
    """Send one request and read its response; b"" when none comes in time."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        return read_response(s)
    except socket.timeout:
        return b""
    finally:
        s.close()


def flood(port, data, count):
    """Send data on count fresh connections and close each at once."""
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(data)
        s.close()


def run(engine):
    mhd = engine == "libmicrohttpd"
    with Demo(config="[server]\ndrain_timeout = 3\nengine = %s\n" % engine) as demo:
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

        if mhd:
            many_cookies_rejected(demo)
        else:
            for pairs, cookie in ((400, COOKIE), (1500, BIG_COOKIE)):
                resp = send(demo.port, b"GET /notes?pairs=%d HTTP/1.1\r\nHost: x\r\nCookie: "
                            % pairs + cookie + b"\r\n\r\n")
                status, _, body = split(resp)
                check(status == 200 and json.loads(body) == {"notes": []},
                      "%d cookies: expected 200, got %r" % (pairs, resp[:200]))

        # A flood of all three leaves nothing in flight.
        flood(demo.port, b"GET /notes?" + QUERY + b" HTTP/1.1\r\nHost: x\r\n\r\n", 40)
        flood(demo.port, b"GET /notes HTTP/1.1\r\nHost: x\r\nCookie: " + COOKIE + b"\r\n\r\n", 40)
        flood(demo.port, b"GET /notes HTTP/1.1\r\nHost: x\r\nCookie: " + BIG_COOKIE
              + b"\r\n\r\n", 40)
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
        for pairs in (400, 1500):
            line = ('"- /notes?pairs=%d HTTP/-" 431 ' if mhd
                    else '"GET /notes?pairs=%d HTTP/1.1" 200 ') % pairs
            check(line in access, "no access-log line %r for the %d cookies:\n%s"
                  % (line, pairs, access[-1500:]))
    print("ok: engine %s" % engine)


def many_cookies_rejected(demo):
    """libmicrohttpd only: cookies that fill its memory pool get 431."""
    # Many cookies: talon's JSON 431 and a closed connection.
    resp = send(demo.port, b"GET /notes?pairs=400 HTTP/1.1\r\nHost: x\r\nCookie: "
                + COOKIE + b"\r\n\r\n")
    status, headers, body = split(resp)
    check(status == 431, "400 cookies: expected 431, got %r" % resp[:200])
    check(headers.get("content-type") == "application/json"
          and headers.get("connection") == "close",
          "400 cookies: headers %r" % headers)
    err = json.loads(body)
    check(err["title"] == "Request Header Fields Too Large" and "cookies" in err["description"],
          "400 cookies: body %r" % err)

    # A Cookie header too large to copy into the pool: libmicrohttpd's
    # own 431, with its HTML body.
    resp = send(demo.port, b"GET /notes?pairs=1500 HTTP/1.1\r\nHost: x\r\nCookie: "
                + BIG_COOKIE + b"\r\n\r\n")
    status, headers, _ = split(resp)
    check(status == 431, "1500 cookies: expected 431, got %r" % resp[:200])
    check(headers.get("content-type") != "application/json",
          "1500 cookies: expected libmicrohttpd's own 431, got headers %r" % headers)


def main():
    for engine in ("native", "libmicrohttpd"):
        run(engine)


if __name__ == "__main__":
    main()
