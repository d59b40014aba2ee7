#!/usr/bin/python3
"""talon-demo over real sockets: keep-alive, HEAD, OPTIONS, 404/405 with
Allow, request ids, body and head limits, bad JSON, malformed requests."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check, fail  # noqa: E402


OVER_POOL_HEADERS = (20000, 100000)


def keep_alive_reuses_connection(demo):
    c = demo.conn()
    c.connect()
    local = c.sock.getsockname()
    for i in range(20):
        c.request("GET", "/hello")
        r = c.getresponse()
        body = r.read()
        check(r.status == 200, "GET /hello #%d: status %d" % (i, r.status))
        check(json.loads(body) == {"message": "hello, world"}, "GET /hello body: %r" % body)
        conn_header = (r.getheader("Connection") or "").lower()
        check("close" not in conn_header,
              "GET /hello #%d answered Connection: %s; keep-alive is broken" % (i, conn_header))
        check(not r.will_close, "response #%d would close the connection" % i)
        check(c.sock is not None and c.sock.getsockname() == local,
              "request #%d did not reuse the first connection" % i)
    # POST bodies keep the connection too.
    c.request("POST", "/notes", body=json.dumps({"text": "keep"}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    check(r.status == 201, "POST on a reused connection: %d" % r.status)
    check(c.sock.getsockname() == local, "POST did not reuse the connection")
    c.close()


def head_and_options(demo):
    status, headers, body = demo.request("HEAD", "/hello")
    check(status == 200, "HEAD /hello: %d" % status)
    check(body == b"", "HEAD /hello sent a body: %r" % body)
    check(headers.get("content-length") == "26",
          "HEAD /hello Content-Length %r, expected the GET body length 26"
          % headers.get("content-length"))

    status, headers, body = demo.request("OPTIONS", "/notes/1")
    check(status == 200, "OPTIONS /notes/1: %d" % status)
    check(headers.get("allow") == "GET, HEAD, PUT, DELETE, OPTIONS",
          "OPTIONS /notes/1 Allow: %r" % headers.get("allow"))

    # The asterisk form targets the server as a whole, and only OPTIONS may use it.
    reply = demo.raw(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(reply.startswith(b"HTTP/1.1 200 "), "OPTIONS *: %r" % reply[:80])
    check(b"\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n" in reply,
          "OPTIONS * Allow header: %r" % reply[:300])
    reply = demo.raw(b"GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(reply.startswith(b"HTTP/1.1 400 "), "GET *: %r" % reply[:80])
    check(b"only allowed with OPTIONS" in reply, "GET * error body: %r" % reply[-200:])


def not_found_and_not_allowed(demo):
    status, headers, body = demo.request("GET", "/nope")
    check(status == 404, "GET /nope: %d" % status)
    check(json.loads(body) == {"title": "Not Found"}, "404 body: %r" % body)
    check(headers.get("content-type") == "application/json", "404 content type")

    status, _, _ = demo.request("GET", "/notes/abc")
    check(status == 404, "GET /notes/abc (not an int): %d" % status)

    status, _, _ = demo.request("GET", "/notes/")
    check(status == 404, "GET /notes/ (trailing slash): %d" % status)

    status, headers, body = demo.request("PATCH", "/notes")
    check(status == 405, "PATCH /notes: %d" % status)
    check(headers.get("allow") == "GET, HEAD, POST, OPTIONS",
          "405 Allow: %r" % headers.get("allow"))
    check(json.loads(body)["title"] == "Method Not Allowed", "405 body: %r" % body)


def request_ids(demo):
    _, headers, _ = demo.request("GET", "/hello", headers={"X-Request-ID": "e2e-abc-1"})
    check(headers.get("x-request-id") == "e2e-abc-1",
          "X-Request-ID not echoed: %r" % headers.get("x-request-id"))
    _, headers, _ = demo.request("GET", "/hello", headers={"X-Request-ID": "bad id \"x\""})
    rid = headers.get("x-request-id", "")
    check(len(rid) == 32 and all(ch in "0123456789abcdef" for ch in rid),
          "invalid X-Request-ID was not replaced by a random id: %r" % rid)
    _, h2, _ = demo.request("GET", "/hello")
    check(h2.get("x-request-id") != rid, "two requests got the same id")


def body_limits(demo):
    big = b"x" * (1024 * 1024 + 1)
    status, headers, body = demo.request("POST", "/notes", body=big,
                                         headers={"Content-Type": "application/json"})
    check(status == 413, "POST of 1 MiB + 1: %d" % status)
    doc = json.loads(body)
    check(doc["title"] == "Content Too Large" and "limit" in doc["description"],
          "413 body: %r" % doc)

    # The same with a chunked body, where the length is not known upfront.
    def chunks():
        for _ in range(20):
            yield b"y" * 65536
    c = demo.conn()
    c.request("POST", "/notes", body=chunks(), encode_chunked=True,
              headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    body = r.read()
    c.close()
    check(r.status == 413, "chunked POST of 1.25 MiB: %d" % r.status)
    check(json.loads(body)["title"] == "Content Too Large", "chunked 413 body: %r" % body)

    # Over max_header_size (16 KiB): talon's JSON 431.
    status, headers, body = demo.request("GET", "/hello", headers={"X-Big": "a" * 17000})
    check(status == 431, "17 kB header: %d" % status)
    check(headers.get("content-type") == "application/json", "17 kB header: headers %r" % headers)
    check(json.loads(body)["title"] == "Request Header Fields Too Large", "431 body: %r" % body)

    # Far beyond max_header_size, before the head is complete: the same
    # JSON 431, sent as soon as the limit is passed. (libmicrohttpd sent its
    # own HTML 431 past its memory pool.) main() checks that the access log
    # has a line for each.
    for size in OVER_POOL_HEADERS:
        reply = demo.raw(b"GET /hello?header=%d HTTP/1.1\r\nHost: x\r\nX-Huge: " % size
                         + b"b" * size + b"\r\n\r\n")
        check(reply.startswith(b"HTTP/1.1 431"), "%d-byte header: %r" % (size, reply[:80]))
        head = reply.partition(b"\r\n\r\n")[0].lower()
        check(b"application/json" in head and b"connection: close" in head,
              "%d-byte header: expected talon's JSON 431 closing the connection, got %r"
              % (size, head))


def json_errors(demo):
    status, _, body = demo.request("POST", "/notes", body=b'{"text": ',
                                   headers={"Content-Type": "application/json"})
    check(status == 400, "malformed JSON: %d" % status)
    doc = json.loads(body)
    check(doc["title"] == "Invalid JSON" and "line 1" in doc["description"],
          "400 body: %r" % doc)
    status, _, body = demo.request("POST", "/notes", body=b'{"text": "x"}',
                                   headers={"Content-Type": "text/plain"})
    check(status == 415, "text/plain body: %d" % status)
    status, _, body = demo.request("POST", "/notes", body=b'{"title": "x"}',
                                   headers={"Content-Type": "application/json"})
    check(status == 400, "note without text: %d" % status)


def malformed_requests(demo):
    cases = [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /hello HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"POST /notes HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /notes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /notes%00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x1b[31m\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET /hello HTTP/1.1\r\n\r\n",
    ]
    for data in cases:
        reply = demo.raw(data, timeout=3)
        if reply:
            status_line = reply.split(b"\r\n", 1)[0]
            code = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
            check(400 <= code < 500 or code == 505,
                  "%r answered %r, expected a 4xx" % (data[:40], status_line))
        check(demo.proc.poll() is None, "talon-demo died on %r" % data[:40])
    # Both framings at once: rejected, as RFC 9112 allows, against smuggling.
    reply = demo.raw(b"POST /notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    check(reply.startswith(b"HTTP/1.1 400"), "Content-Length with Transfer-Encoding: %r"
          % reply[:60])
    status, _, _ = demo.request("GET", "/health")
    check(status == 200, "GET /health after malformed requests: %d" % status)


def main():
    with Demo(args=["--threads", "2"]) as demo:
        keep_alive_reuses_connection(demo)
        head_and_options(demo)
        not_found_and_not_allowed(demo)
        request_ids(demo)
        body_limits(demo)
        json_errors(demo)
        malformed_requests(demo)
        reply = demo.raw(b"GET /" + b"a" * 60000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        check(reply.startswith(b"HTTP/1.1 414"), "60 kB request line: %r" % reply[:80])
        code = demo.stop()
        check(code == 0, "talon-demo exited with %d after SIGTERM; stderr:\n%s"
              % (code, demo.read_stderr()))
        with open(demo.path("var", "log", "access.log")) as f:
            access = f.read()
        # A request line over max_header_size is not logged: the log would
        # hold whatever a client sent, up to the engine's read buffer.
        check('"- - HTTP/-" 414 ' in access,
              "no access-log line without the target for the 414:\n%s" % access[-1500:])
        check(max(len(line) for line in access.splitlines()) < 20000,
              "an access-log line is longer than the head limit")
        for size in OVER_POOL_HEADERS:
            line = '"GET /hello?header=%d HTTP/1.1" 431 ' % size
            check(line in access, "no access-log line %r for the 431:\n%s"
                  % (line, access[-1500:]))
    print("ok")


if __name__ == "__main__":
    main()
