#!/usr/bin/python3
"""Request heads around max_header_size and libmicrohttpd's per-connection
memory pool (max_header_size + 3 KiB, see docs/framework.md "Limits").

Every head gets a response and an access-log line, whether talon or
libmicrohttpd sends the response:
- a head within the limit with up to 32 fields gets 200;
- over the limit, or with so many fields that the pool would have less
  than 1 KiB left for the response head, talon sends a JSON 431, also
  where the pool is too full for libmicrohttpd to build that response;
- a head that does not fit the pool gets libmicrohttpd's own HTML 431,
  and the access log records it with method "-" and status 431.
No head size or field count may get a closed connection without a response.
talon's own engine has no pool: every head within the limit with at most
128 fields gets 200, and every head over it talon's JSON 431, logged with
its request line."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import DEMO, Demo, check, read_response  # noqa: E402
from talon_e2e import split_response as parse  # noqa: E402

LIMIT = 16 * 1024
POOL = LIMIT + 3 * 1024 + 2


def exchange(port, data, timeout=10):
    """Send data on a fresh connection and read one response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        return read_response(s)
    finally:
        s.close()


def head_of(target, size, fields):
    """A GET of target whose head is size bytes as talon counts it (request
    line plus, per field, name, value and 4 bytes), with Host and fields - 1
    more fields of equal length."""
    line = "GET %s HTTP/1.1" % target
    used = len(line) + 2 + len("Host") + len("x") + 4
    extra = fields - 1
    names = ["X-F%03d" % i for i in range(extra)]
    room = size - used - sum(len(n) + 4 for n in names)
    check(extra == 0 or room >= extra, "head_of(%d, %d): fields do not fit" % (size, fields))
    values = [room // extra + (1 if i < room % extra else 0) for i in range(extra)]
    text = line + "\r\nHost: x\r\n"
    text += "".join("%s: %s\r\n" % (n, "v" * v) for n, v in zip(names, values))
    return (text + "\r\n").encode()


def expect_json_431(reply, what, word):
    status, headers, body = parse(reply)
    check(status == 431, "%s: expected 431, got %r" % (what, reply[:120]))
    check(headers.get("content-type") == "application/json",
          "%s: expected talon's JSON 431, got headers %r" % (what, headers))
    doc = json.loads(body)
    check(doc["title"] == "Request Header Fields Too Large" and word in doc["description"],
          "%s: 431 body %r" % (what, doc))


def limit_too_large_rejected():
    """max_header_size above 1 MiB is a configuration error, not a pool of
    that size on every connection."""
    with tempfile.TemporaryDirectory(prefix="talon-e2e-") as workdir:
        path = os.path.join(workdir, "talon.ini")
        with open(path, "w") as f:
            f.write("[server]\nmax_header_size = 2M\n")
        proc = subprocess.run([DEMO, "--listen", "127.0.0.1:0", "--config", path], cwd=workdir,
                              capture_output=True, text=True, timeout=30)
        check(proc.returncode != 0, "max_header_size = 2M: talon-demo started (exit %d)"
              % proc.returncode)
        output = proc.stdout + proc.stderr
        check("invalid max_header_size 2097152" in output and "1 MiB" in output,
              "max_header_size = 2M: expected an error naming the value and the limit, got:\n"
              + output[-1500:])


def run(engine):
    mhd = engine == "libmicrohttpd"
    config = "[server]\nmax_header_size = %d\nengine = %s\n" % (LIMIT, engine)
    with Demo(config=config) as demo:
        sent = 0

        # At the limit with 32 fields: served.
        for fields in (1, 16, 32):
            reply = exchange(demo.port, head_of("/hello?at-limit=%d" % fields, LIMIT, fields))
            sent += 1
            status, _, body = parse(reply)
            check(status == 200, "head of %d bytes with %d fields: expected 200, got %r"
                  % (LIMIT, fields, reply[:120]))
            check(json.loads(body) == {"message": "hello, world"}, "200 body %r" % body)

        # One byte over the limit: talon's JSON 431 naming the size.
        reply = exchange(demo.port, head_of("/hello", LIMIT + 1, 4))
        sent += 1
        expect_json_431(reply, "head of limit + 1 bytes", "the limit is %d bytes" % LIMIT)

        # Within the limit, but 60 fields fill the pool: talon's JSON 431
        # before any responder runs.
        reply = exchange(demo.port, head_of("/hello", 15000, 60))
        sent += 1
        if mhd:
            expect_json_431(reply, "head of 15000 bytes with 60 fields", "fields")
        else:
            check(parse(reply)[0] == 200, "head of 15000 bytes with 60 fields: expected 200, "
                  "got %r" % reply[:120])

        # Heads from the limit up past the pool, one field each: always a
        # response, 431 from talon (JSON) or from libmicrohttpd (HTML).
        answers = {}
        for size in range(LIMIT + 16, POOL + 512, 48):
            reply = exchange(demo.port, head_of("/hello?sweep=%d" % size, size, 2))
            sent += 1
            status, headers, _ = parse(reply)
            check(status == 431, "head of %d bytes: expected 431, got %r" % (size, reply[:120]))
            kind = "json" if headers.get("content-type") == "application/json" else "other"
            answers[kind] = answers.get(kind, 0) + 1
        if mhd:
            check(answers.get("json", 0) > 0 and answers.get("other", 0) > 0,
                  "the sweep should reach both talon's and libmicrohttpd's 431: %r" % answers)
        else:
            check(answers.get("other", 0) == 0, "the sweep got 431s without talon's JSON "
                  "body: %r" % answers)

        # Field counts from 1 to 300 in heads of 4, 8, 12 and 16 KB: never
        # a closed connection, and 200 whenever the head is within the limit
        # with at most 32 fields.
        for size in (4000, 8000, 12000, LIMIT):
            for fields in (1, 8, 32, 48, 64, 100, 150, 200, 300):
                if size < 20 * fields:
                    continue
                reply = exchange(demo.port, head_of("/hello?fields=%d" % fields, size, fields))
                sent += 1
                status, _, _ = parse(reply)
                check(status in (200, 431), "head of %d bytes with %d fields: expected 200 or "
                      "431, got %r" % (size, fields, reply[:120]))
                if fields <= 32:
                    check(status == 200, "head of %d bytes with %d fields: expected 200, got %d"
                          % (size, fields, status))

        # Far past the pool: libmicrohttpd's own 431.
        reply = exchange(demo.port, b"GET /hello?huge=1 HTTP/1.1\r\nHost: x\r\nX-Huge: "
                         + b"b" * 100000 + b"\r\n\r\n")
        sent += 1
        status, headers, _ = parse(reply)
        check(status == 431 and (headers.get("content-type") == "application/json") != mhd,
              "100 kB header: expected %s 431, got %r"
              % ("libmicrohttpd's" if mhd else "talon's JSON", reply[:120]))

        status, _, _ = demo.request("GET", "/health")
        sent += 1
        check(status == 200, "GET /health after the heads: %d" % status)
        rc = demo.stop()
        check(rc == 0, "talon-demo exited with %r" % rc)

        with open(demo.path("var", "log", "access.log")) as f:
            access = f.read().splitlines()
        check(len(access) == sent, "expected one access-log line per request (%d), found %d"
              % (sent, len(access)))
        check(not any(re.search(r'" 499 ', line) for line in access),
              "a head was logged as closed without a response (499):\n"
              + "\n".join(line[:160] for line in access if '" 499 ' in line))
        huge = ('"- /hello?huge=1 HTTP/-" 431 0 ' if mhd
                else '"GET /hello?huge=1 HTTP/1.1" 431 ')
        check(any(huge in line for line in access),
              "the 431 for the 100 kB header is not in the access log:\n"
              + "\n".join(line[:160] for line in access[-5:]))
    print("ok: engine %s" % engine)


def main():
    limit_too_large_rejected()
    for engine in ("native", "libmicrohttpd"):
        run(engine)


if __name__ == "__main__":
    main()
