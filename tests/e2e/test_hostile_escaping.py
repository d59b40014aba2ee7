#!/usr/bin/python3
"""Control bytes and invalid UTF-8 in every field a client controls -- the
method, path, query, logged headers, X-Request-ID, X-Forwarded-For from a
trusted proxy, traceparent, and JSON body strings that reach the audit trail
-- end up escaped in the access log (combined and JSON), the app log (text
and JSON) and the audit trail: every line is one line of valid UTF-8 without
raw control bytes, the JSON lines parse with jq, and the trail verifies."""
import json
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check, fail  # noqa: E402
from audit_e2e import check_verify, records  # noqa: E402

EVIL = b"\x1b[31m\x01\x7f\"q\"\\ \xff\xfe\xc0\xaf\xed\xa0\x80 caf\xc3\xa9"
CONFIG = """
[server]
trusted_proxies = 127.0.0.1
[log.access]
format = combined
file = var/log/access.log
[log.access.2]
format = json
file = var/log/access.json
[log.app]
file = var/log/app.log
level = info
[log.app.2]
format = json
file = var/log/app.json
level = info
"""


def raw(demo, data):
    """Send one raw request; return the response head."""
    s = socket.create_connection(("127.0.0.1", demo.port), timeout=10)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def request(method, target, headers=(), body=b""):
    head = method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    for name, value in headers:
        head += name + b": " + value + b"\r\n"
    if body:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


# Each request, and the status it must get.
REQUESTS = [
    (request(b"G\x1bT\xff", b"/hello"), 400),                          # method
    (request(b"GET", b"/notes/" + EVIL.replace(b" ", b"_")), 404),     # path
    (request(b"GET", b"/notes?q=" + EVIL.replace(b" ", b"+") + b"&enc=%1b%0a%0d%ff%22"), 200),
    (request(b"GET", b"/hello", [(b"User-Agent", EVIL), (b"Referer", EVIL)]), 200),
    (request(b"GET", b"/hello", [(b"X-Request-ID", EVIL)]), 200),
    (request(b"GET", b"/hello", [(b"X-Forwarded-For", EVIL + b", 203.0.113.9")]), 200),
    (request(b"GET", b"/hello", [(b"X-Forwarded-For", b"203.0.113.9, " + EVIL)]), 200),
    (request(b"GET", b"/hello", [(b"traceparent", b"00-" + EVIL + b"-00f067aa0ba902b7-01")]), 200),
    (request(b"POST", b"/notes", body=json.dumps(
        {"text": "\x1b[31m\x01\x7f\u2028\"q\"\\ caf\u00e9 \ud800".encode("utf-16", "surrogatepass")
         .decode("utf-16", "replace")}).encode()), 201),
    (request(b"POST", b"/notes", body=b'{"text": "' + EVIL + b'"}'), 400),  # invalid UTF-8
    (request(b"POST", b"/login", body=json.dumps(
        {"user": "\x1b[2J\u00ff", "password": "x"}).encode()), 400),
]


def clean_lines(path):
    """Every line of path: one line, valid UTF-8, no raw control byte."""
    with open(path, "rb") as f:
        data = f.read()
    check(data.endswith(b"\n"), "%s does not end with a newline" % path)
    lines = data.split(b"\n")[:-1]
    for i, line in enumerate(lines):
        for b in line:
            if b < 0x20 or b == 0x7f:
                fail("%s line %d contains the raw byte 0x%02x: %r" % (path, i + 1, b, line[:300]))
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            fail("%s line %d is not valid UTF-8: %r" % (path, i + 1, line[:300]))
    return lines


def jq_all(path):
    r = subprocess.run(["jq", "-c", ".", path], capture_output=True, timeout=60)
    check(r.returncode == 0, "jq cannot parse %s: %s" % (path, r.stderr.decode(errors="replace")))
    return [json.loads(x) for x in r.stdout.split(b"\n") if x]


def main():
    with Demo(config=CONFIG) as demo:
        for data, status in REQUESTS:
            out = raw(demo, data)
            m = re.match(rb"HTTP/1\.1 (\d{3})", out)
            check(m is not None and int(m.group(1)) == status,
                  "%r: expected %d, got %r" % (data[:60], status, out[:100]))
            if b"X-Request-ID: \x1b" in data:
                rid = re.search(rb"X-Request-ID: (\S+)", out).group(1)
                check(re.fullmatch(rb"[0-9a-f]{32}", rid) is not None,
                      "a hostile X-Request-ID was echoed: %r" % rid)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())

        combined = clean_lines(demo.path("var", "log", "access.log"))
        check(len(combined) == len(REQUESTS), "access.log has %d lines for %d requests"
              % (len(combined), len(REQUESTS)))
        text = b"\n".join(combined)
        for needle in (b'"G\\x1BT\\xFF /hello HTTP/1.1" 400',
                       b"/notes/\\x1B[31m\\x01\\x7F\\x22q\\x22\\x5C_\\xFF\\xFE\\xC0\\xAF",
                       b'"\\x1B[31m\\x01\\x7F\\x22q\\x22\\x5C \\xFF\\xFE\\xC0\\xAF\\xED\\xA0\\x80 caf\xc3\xa9"'):
            check(needle in text, "access.log lacks the escaped %r:\n%s"
                  % (needle, text.decode()))
        access = jq_all(demo.path("var", "log", "access.json"))
        check(len(access) == len(REQUESTS), "access.json has %d records" % len(access))
        for row in access:
            ip = row.get("client.ip", "-")
            check(re.fullmatch(r"[0-9a-f.:]+", ip) is not None, "client.ip is %r" % ip)
            check("\x1b" not in row.get("trace.id", ""), "a hostile trace id was kept: %r" % row)
            check(re.fullmatch(r"[0-9a-f]{32}", row["http.request.id"]) is not None,
                  "a hostile request id was kept: %r" % row["http.request.id"])
        methods = [row["http.request.method"] for row in access]
        check("G\x1bT\u00ff" in methods, "the hostile method did not read back: %r" % methods)
        check(any(row.get("client.ip") == "203.0.113.9" for row in access),
              "X-Forwarded-For from the trusted proxy was not applied")
        clean_lines(demo.path("var", "log", "app.log"))
        jq_all(demo.path("var", "log", "app.json"))

        for path in sorted(os.listdir(demo.path("var", "audit"))):
            if path.endswith(".jsonl"):
                clean_lines(demo.path("var", "audit", path))
                jq_all(demo.path("var", "audit", path))
        trail = records(demo, settle=0)
        paths = [(r.get("request") or {}).get("path") or "" for r in trail]
        check(any(p.startswith("/notes/\x1b[31m\x01\x7f\"q\"\\_\u00ff") for p in paths),
              "the hostile path is not in the trail: %r" % paths)
        # The decoded query value is kept: its invalid byte 0xFF is written
        # as \u00ff, which a JSON reader turns into U+00FF.
        queries = [((r.get("data") or {}).get("query") or {}) for r in trail]
        check(any(q.get("enc") == "\x1b\n\r\u00ff\"" for q in queries),
              "the decoded query did not read back from the trail: %r" % [q for q in queries if q])
        texts = [(((r.get("data") or {}).get("request") or {}).get("body") or {}).get("text")
                 for r in trail if r["type"] == "http_request"]
        check(any(t and t.startswith("\x1b[31m\x01\x7f\u2028\"q\"\\ caf\u00e9")
                  for t in texts), "the note text did not read back from the trail: %r" % texts)
        check_verify(demo)
    print("ok: %d hostile requests, every log line escaped" % len(REQUESTS))


if __name__ == "__main__":
    main()
