#!/usr/bin/python3
"""Hostile clients against the native HTTP engine, sent raw. Each malformed
head gets one JSON error, a closed connection and one access log line,
also when it is sent a byte at a time. Pipelined requests are sent in one write and a byte at a time, and a chunked
request is split at every byte. POST /notes is held for a sync audit record
while clients reset or leave, then SIGTERM stops the server. Three checks
cover defects the engine had. "close" in a second Connection field or
after "keep-alive" must close (RFC 9112 section 9.3). A 1xx status set by
a handler must not go out as the final response (RFC 9110 section 15). A
client that half-closes behind a held request must see its connection
closed at once, not at the connection timeout. Every check runs, and each
failure is printed."""
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo  # noqa: E402

HOST = b"Host: x\r\n"
HELLO = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
HELLO_CLOSE = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
CONFIG = "[server]\nengine = native\nconnection_timeout = 10s\n"
ACCESS_LINE = re.compile(r'^\S+ - \S+ \[[^\]]+\] "[^"]*" (\d{3}) \d+ "[^"]*" "[^"]*"$')

failures = []


def expect(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, file=sys.stderr)
    return condition


def statuses(data):
    return [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def exchange(demo, data, timeout=3.0, shut=False, pause=0.0):
    """Send data (bytes, or a list of pieces sent pause seconds apart),
    optionally shut the write side, and read until the server closes or
    timeout passes. Returns (bytes read, closed by the server)."""
    s = socket.create_connection(("127.0.0.1", demo.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = b""
    try:
        for i, piece in enumerate([data] if isinstance(data, bytes) else data):
            if i > 0 and pause > 0:
                time.sleep(pause)
            s.sendall(piece)
        if shut:
            s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    except ConnectionResetError:
        return out, True
    except socket.timeout:
        return out, False
    finally:
        s.close()


# name, request bytes, expected status. Each must get exactly that one
# response, with a JSON body, and then a close.
MALFORMED = [
    ("bare LF", b"GET /hello HTTP/1.1\nHost: x\n\n", 400),
    ("bare CR in a field", b"GET /hello HTTP/1.1\r\nHost: x\rY: 1\r\n\r\n", 400),
    ("NUL in the target", b"GET /a\x00b HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    ("NUL in a value", b"GET /hello HTTP/1.1\r\n" + HOST + b"X: a\x00b\r\n\r\n", 400),
    ("obs-fold", b"GET /hello HTTP/1.1\r\n" + HOST + b"X: a\r\n b\r\n\r\n", 400),
    ("space before colon", b"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("no colon", b"GET /hello HTTP/1.1\r\n" + HOST + b"Xyz\r\n\r\n", 400),
    ("two spaces after method", b"GET  /hello HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    ("HTTP/0.9 request line", b"GET /hello\r\n\r\n", 400),
    ("HTTP/2.0", b"GET /hello HTTP/2.0\r\n" + HOST + b"\r\n", 505),
    ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ("method not a token", b"GE(T /hello HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),
    ("no Host in 1.1", b"GET /hello HTTP/1.1\r\n\r\n", 400),
    ("two Hosts", b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("Content-Length -1", b"POST /notes HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n\r\n", 400),
    ("Content-Length list", b"POST /notes HTTP/1.1\r\n" + HOST + b"Content-Length: 1, 1\r\n\r\nx", 400),
    ("Content-Length 20 digits",
     b"POST /notes HTTP/1.1\r\n" + HOST + b"Content-Length: 00000000000000000001\r\n\r\nx", 400),
    ("Content-Length 2^64",
     b"POST /notes HTTP/1.1\r\n" + HOST + b"Content-Length: 18446744073709551616\r\n\r\n", 400),
    ("Content-Length over the limit",
     b"POST /notes HTTP/1.1\r\n" + HOST + b"Content-Length: 9999999999999999999\r\n\r\n", 413),
    ("chunk size 17 digits", b"POST /notes HTTP/1.1\r\n" + HOST +
     b"Transfer-Encoding: chunked\r\n\r\n00000000000000001\r\nx\r\n0\r\n\r\n", 400),
    ("chunk data too long", b"POST /notes HTTP/1.1\r\n" + HOST +
     b"Transfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", 400),
    ("129 fields", b"GET /hello HTTP/1.1\r\n" + HOST +
     b"".join(b"X%d: v\r\n" % i for i in range(128)) + b"\r\n", 431),
    ("head of 16385 bytes", b"GET /hello HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 16350 + b"\r\n\r\n", 431),
    ("request line of 100 KB", b"GET /" + b"a" * 100000, 414),
]


def malformed_heads(demo):
    for name, data, status in MALFORMED:
        out, closed = exchange(demo, data)
        got = statuses(out)
        expect(got == [status], "%s: statuses %r, expected [%d]" % (name, got, status))
        expect(closed, "%s: the connection stayed open after the error" % name)
        body = out.partition(b"\r\n\r\n")[2]
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        expect(isinstance(doc, dict) and "title" in doc, "%s: body is not a JSON error: %r"
               % (name, body[:80]))


def malformed_heads_trickled(demo):
    """The engine parses a head that arrives in pieces again only when a
    piece brings CR, LF or NUL. Sent a byte at a time, each short malformed
    head must still get its status."""
    for name, data, status in MALFORMED:
        if len(data) > 1000:
            continue
        out, closed = exchange(demo, [data[i:i + 1] for i in range(len(data))], timeout=10,
                               pause=0.0002)
        got = statuses(out)
        expect(got == [status], "%s, a byte at a time: statuses %r, expected [%d]"
               % (name, got, status))
        expect(closed, "%s, a byte at a time: the connection stayed open after the error" % name)


def head_size_limit_exact(demo):
    data = b"GET /hello HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 16349 + b"\r\n\r\n"
    out, _ = exchange(demo, data + HELLO_CLOSE)
    expect(statuses(out) == [200, 200], "head of exactly 16384 bytes: statuses %r"
           % statuses(out))


def pipelining(demo):
    requests = [HELLO, b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /debug/hold?ms=1 HTTP/1.1\r\nHost: x\r\n\r\n"] * 100 + [HELLO_CLOSE]
    out, closed = exchange(demo, b"".join(requests), timeout=10)
    expect(statuses(out) == [200] * len(requests), "300 pipelined requests in one write: "
           "%d responses, statuses %r" % (len(statuses(out)), sorted(set(statuses(out)))))
    expect(closed, "pipelined requests: no close after Connection: close")
    expect(out.count(b"hello, world") == 101, "pipelined requests: %d /hello bodies, expected "
           "101 (HEAD has none)" % out.count(b"hello, world"))

    data = HELLO * 2 + HELLO_CLOSE
    out, _ = exchange(demo, [data[i:i + 1] for i in range(len(data))], timeout=10)
    expect(statuses(out) == [200] * 3, "3 requests sent a byte at a time: %r" % statuses(out))


def chunked_split_everywhere(demo):
    body = b"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer: v\r\n\r\n"
    data = (b"GET /hello HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n" + body +
            HELLO_CLOSE)
    bad = []
    for cut in range(1, len(data)):
        out, _ = exchange(demo, [data[:cut], data[cut:]], timeout=5, pause=0.001)
        if statuses(out) != [200, 200]:
            bad.append((cut, statuses(out)))
    expect(not bad, "chunked request split in two at each byte: wrong answers at %r" % bad[:5])


def connection_close_wins(demo):
    """RFC 9112 section 9.3: with "close" among the connection options the
    connection does not persist, whatever else is listed."""
    for name, data in (
            ("HTTP/1.0 close, keep-alive",
             b"GET /hello HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n"),
            ("HTTP/1.0 keep-alive then a close field",
             b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"),
            ("HTTP/1.1 keep-alive then a close field",
             b"GET /hello HTTP/1.1\r\n" + HOST +
             b"Connection: keep-alive\r\nConnection: close\r\n\r\n")):
        out, closed = exchange(demo, data, timeout=2)
        expect(statuses(out) == [200], "%s: statuses %r" % (name, statuses(out)))
        expect(closed, "%s: the connection stayed open" % name)


def final_status_1xx(demo):
    """A 1xx status is interim (RFC 9110 section 15.2). Sent as the final
    response, it makes the client take the next response as this one's."""
    out, _ = exchange(demo, b"GET /debug/hold?ms=0&status=101 HTTP/1.1\r\n" + HOST + b"\r\n" +
                      HELLO_CLOSE, timeout=2)
    got = statuses(out)
    expect(len(got) == 2 and 200 <= got[0] <= 599,
           "a handler's status 101 went out as the final response: statuses %r" % got)


def half_close_after_held(demo):
    """A client sends a held request and a second one, then shuts its write
    side. The FIN often arrives in the same event as the requests, while
    the first request is held. The engine must remember it and close the
    connection after both responses, not at connection_timeout (10 s here),
    as libmicrohttpd does. Whether the FIN comes with the data or in a later
    event depends on timing; before the fix about 2 runs in 3 failed."""
    start = time.time()
    out, closed = exchange(demo, b"GET /debug/hold?ms=300 HTTP/1.1\r\n" + HOST + b"\r\n" + HELLO,
                           timeout=4, shut=True)
    expect(statuses(out) == [200, 200], "held request, GET, then shutdown(SHUT_WR): statuses %r"
           % statuses(out))
    expect(closed, "held request, GET, then shutdown(SHUT_WR): still open after %.1f s (the "
           "server waits for connection_timeout)" % (time.time() - start))


def login(demo):
    body = b'{"user":"bob","password":"bob-user-demo"}'
    out, _ = exchange(demo, b"POST /login HTTP/1.1\r\n" + HOST +
                      b"Content-Type: application/json\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body, timeout=10)
    return json.loads(out.partition(b"\r\n\r\n")[2])["token"].encode()


def trail_size(demo):
    root = demo.path("var", "audit")
    return sum(os.path.getsize(os.path.join(root, name)) for name in os.listdir(root))


def wait_trail_quiet(demo, quiet=1.0, limit=20.0):
    last, since, deadline = trail_size(demo), time.time(), time.time() + limit
    while time.time() < deadline:
        time.sleep(0.1)
        size = trail_size(demo)
        if size != last:
            last, since = size, time.time()
        elif time.time() - since >= quiet:
            return
    expect(False, "the audit trail was still growing after %.0f s" % limit)


def held_notes_with_leavers(demo):
    """Hold POST /notes until its sync audit record is durable while a
    quarter of the clients reset, a quarter close and a quarter half-close."""
    token = login(demo)
    results = {}
    lock = threading.Lock()

    def client(i):
        note = b'{"text":"hostile %d"}' % i
        data = (b"POST /notes HTTP/1.1\r\n" + HOST + b"Authorization: Bearer " + token +
                b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(note) +
                note)
        mode = ("reset", "close", "half-close", "read")[i % 4]
        s = socket.create_connection(("127.0.0.1", demo.port), timeout=10)
        try:
            s.sendall(data)
            if mode == "reset":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                outcome = "left"
            elif mode == "close":
                outcome = "left"
            else:
                if mode == "half-close":
                    s.shutdown(socket.SHUT_WR)
                out = b""
                while not (statuses(out) and out.endswith(b"}")):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                outcome = str(statuses(out))
        except OSError as e:
            outcome = repr(e)
        finally:
            s.close()
        with lock:
            results.setdefault(mode, []).append(outcome)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # The reading clients have their responses, but a leaver's request may be
    # still held: its record can be in a later group commit, and the write to its
    # closed socket fails after that. Stopping now would count it as cut by
    # the stop. Wait until the trail has not grown for a second.
    wait_trail_quiet(demo)
    for mode in ("read", "half-close"):
        got = results.get(mode, [])
        expect(got == ["[201]"] * 50, "POST /notes held, %s clients: %r"
               % (mode, sorted(set(got))))


def main():
    with Demo(args=["--test-routes"], config=CONFIG) as demo:
        malformed_heads(demo)
        malformed_heads_trickled(demo)
        head_size_limit_exact(demo)
        pipelining(demo)
        chunked_split_everywhere(demo)
        connection_close_wins(demo)
        final_status_1xx(demo)
        half_close_after_held(demo)
        held_notes_with_leavers(demo)

        code = demo.stop()
        expect(code == 0, "talon-demo exited with %r after SIGTERM" % code)
        with open(demo.path("var", "log", "app.log"), errors="replace") as f:
            app_log = f.read()
        expect("stopped: every in-flight request finished" in app_log,
               "the stop log does not say that every in-flight request finished")
        with open(demo.path("var", "log", "access.log"), errors="replace") as f:
            lines = f.read().splitlines()
        malformed = [line for line in lines if not ACCESS_LINE.match(line)]
        expect(not malformed, "malformed access log lines: %r" % malformed[:3])
        # The access log is in request order: the malformed heads come first.
        logged = [int(ACCESS_LINE.match(line).group(1)) for line in lines[:len(MALFORMED)]
                  if ACCESS_LINE.match(line)]
        expect(logged == [status for _, _, status in MALFORMED],
               "access log statuses of the malformed heads: %r" % logged)

    if failures:
        print("%d checks failed" % len(failures), file=sys.stderr)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
