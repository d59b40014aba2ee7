#!/usr/bin/python3
"""The query, form body and body fields of an http_request record contain
what the client sent, escaped as docs/audit-format.md specifies. Valid UTF-8
is kept and each invalid byte becomes \\u00XX, so an invalid byte and the
text "\\xFF" give different records. The checks read the raw trail lines,
because a JSON parser would turn \\u00ff back into U+00FF."""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402
from audit_e2e import check_verify, records, trail_dir  # noqa: E402

FORM = b"application/x-www-form-urlencoded"
PASSWORD = b"bob-user-demo"


def send(demo, rid, method, target, body=b"", headers=()):
    """Send one raw request with X-Request-ID rid and return its status."""
    head = [b"%s %s HTTP/1.1" % (method, target), b"Host: 127.0.0.1",
            b"X-Request-ID: " + rid, b"Connection: close",
            b"Content-Length: %d" % len(body)]
    head += list(headers)
    reply = demo.raw(b"\r\n".join(head) + b"\r\n\r\n" + body)
    check(reply.startswith(b"HTTP/1.1 "), "%s: no HTTP response: %r" % (rid, reply[:80]))
    return int(reply[9:12])


def trail_bytes(demo):
    data = b""
    for name in sorted(os.listdir(trail_dir(demo))):
        if name.endswith(".jsonl"):
            with open(os.path.join(trail_dir(demo), name), "rb") as f:
                data += f.read()
    return data


def record_line(demo, rid):
    """The raw line of the http_request record of request rid."""
    want = b'"id":"' + rid + b'"'
    records(demo, settle=5, want=lambda r: (r.get("request") or {}).get("id") == rid.decode())
    lines = [x for x in trail_bytes(demo).split(b"\n")
             if want in x and b'"type":"http_request"' in x]
    check(len(lines) == 1, "request %s: expected one http_request record, found %d"
          % (rid.decode(), len(lines)))
    return lines[0]


def expect_in_record(demo, rid, needle):
    line = record_line(demo, rid)
    check(needle in line, "request %s: the record lacks %r:\n%s"
          % (rid.decode(), needle, line.decode(errors="replace")))


def check_invalid_utf8(demo):
    cases = [
        (b"q-invalid", b"/notes?x=%ff", b'"query":{"x":"\\u00ff"}'),
        (b"q-text", b"/notes?x=%5CxFF", b'"query":{"x":"\\\\xFF"}'),
        (b"q-mixed", b"/notes?x=a%ffb%1b", b'"query":{"x":"a\\u00ffb\\u001b"}'),
        (b"q-valid", b"/notes?x=caf%c3%a9%f0%9f%98%80", b'"query":{"x":"caf\xc3\xa9\xf0\x9f\x98\x80"}'),
        (b"q-key", b"/notes?%fe%5Cx=1", b'"query":{"\\u00fe\\\\x":"1"}'),
        (b"q-semicolon", b"/notes?x=%ff;password=qs-Secret-31",
         b'"query":{"x":"\\u00ff;password=[REDACTED]"}'),
    ]
    for rid, target, needle in cases:
        send(demo, rid, b"GET", target)
        expect_in_record(demo, rid, needle)

    send(demo, b"form-invalid", b"POST", b"/notes",
         b"x=%ff&y=%5CxFF&%fe=a%ffb%1b&pwd%ff=form-Secret-77", [b"Content-Type: " + FORM])
    expect_in_record(demo, b"form-invalid",
                     b'"body":{"x":"\\u00ff","y":"\\\\xFF","\\u00fe":"a\\u00ffb\\u001b",'
                     b'"pwd\\u00ff":"[REDACTED]"}')

    send(demo, b"ctype-invalid", b"POST", b"/notes", b"abc", [b"Content-Type: text/plain; x=\xff"])
    expect_in_record(demo, b"ctype-invalid", b'"content_type":"text/plain; x=\\u00ff"')


def check_nul_keys(demo):
    """A %00 in a form key is kept whole in the record, as in a value. A
    query with %00 gets 400 (docs/framework.md) and is recorded whole too."""
    send(demo, b"form-nul", b"POST", b"/notes",
         b"a%00b=1&pass%00word=nul-Secret-41&z=1%002&x%00password=nul-Secret-42",
         [b"Content-Type: " + FORM])
    expect_in_record(demo, b"form-nul",
                     b'"body":{"a\\u0000b":"1","pass\\u0000word":"[REDACTED]",'
                     b'"z":"1\\u00002","x\\u0000password":"[REDACTED]"}')

    cases = [
        (b"q-nul-key", b"/notes?k%00=v", b'"query":{"k\\u0000":"v"}'),
        (b"q-nul-secret", b"/notes?x%00token=nul-Secret-43", b'"query":{"x\\u0000token":"[REDACTED]"}'),
        (b"q-nul-semicolon", b"/notes?q=a%00;password=nul-Secret-44",
         b'"query":{"q":"a\\u0000;password=[REDACTED]"}'),
    ]
    for rid, target, needle in cases:
        status = send(demo, rid, b"GET", target)
        check(status == 400, "GET %s: expected 400, got %d" % (target, status))
        expect_in_record(demo, rid, needle)


def check_body_size_only(demo):
    """A body that is not kept (free text, or over max_body_size) is recorded
    by its size alone: a plain SHA-256 of a body that is just a password
    would let every reader of the trail guess it offline."""
    send(demo, b"text-password", b"POST", b"/login", PASSWORD, [b"Content-Type: text/plain"])
    expect_in_record(demo, b"text-password",
                     b'"request":{"bytes":13,"content_type":"text/plain"}')

    big = b'{"text":"' + b"a" * 5000 + b'"}'
    send(demo, b"json-large", b"POST", b"/notes", big, [b"Content-Type: application/json"])
    expect_in_record(demo, b"json-large",
                     b'"request":{"bytes":%d,"content_type":"application/json","truncated":true}'
                     % len(big))


def check_reason(demo):
    """The reason of an http_request record names the status of a 4xx or
    5xx response, and is null for any other."""
    cases = [(b"reason-ok", b"/notes", 200, b'"reason":null'),
             (b"reason-400", b"/notes?k%00=v", 400, b'"reason":"HTTP 400 Bad Request"'),
             (b"reason-404", b"/no-such-page", 404, b'"reason":"HTTP 404 Not Found"')]
    for rid, target, want, needle in cases:
        status = send(demo, rid, b"GET", target)
        check(status == want, "GET %s: expected %d, got %d" % (target, want, status))
        expect_in_record(demo, rid, needle)


def main():
    with Demo() as demo:
        check_invalid_utf8(demo)
        check_nul_keys(demo)
        check_body_size_only(demo)
        check_reason(demo)
        check(demo.stop() == 0, "talon-demo did not exit cleanly")
        trail = trail_bytes(demo)
        digest = hashlib.sha256(PASSWORD).hexdigest().encode()
        check(digest not in trail, "the SHA-256 of the password body is in the trail")
        check(b'"sha256"' not in trail, "a body hash is in the trail")
        for secret in (b"qs-Secret-31", b"form-Secret-77", b"nul-Secret-41", b"nul-Secret-42",
                       b"nul-Secret-43", b"nul-Secret-44"):
            check(secret not in trail, "the secret %r is in the trail" % secret)
        check_verify(demo)
    print("ok: query, form and body fields and the reason recorded as sent")


if __name__ == "__main__":
    main()
