#!/usr/bin/python3
"""Access log of the real talon-demo, read back by the tools operators use:
the default combined log parses in GoAccess with no invalid line, the JSON log
reads back in jq to the bytes that were sent, hostile bytes sent raw over a
socket end up escaped, and skip_paths/skip_status leave requests out."""
import json
import os
import re
import socket
import stat
import subprocess
import tempfile

from talon_e2e import Demo, check, fail

COMBINED = re.compile(
    rb'^(\S+) - (\S+) \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
    rb'"([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$')

# Hostile header values, all sent raw. Each is valid in HTTP (no CR, LF or
# NUL), so the server accepts the request and must escape them in the log.
ESC_UA = b"evil\x1b[31mred\x1b[0m \"quoted\" back\\slash caf\xc3\xa9"
BAD_UTF8_UA = b"bad \xff\xfe \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 end"
BAD_REFERER = b"http://x/\x7f\x01\xc3"


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    check(data == b"" or data.endswith(b"\n"), "%s does not end with a newline" % path)
    return data.split(b"\n")[:-1] if data else []


def assert_clean(lines, path):
    for i, line in enumerate(lines):
        for b in line:
            if b < 0x20 or b == 0x7f:
                fail("%s line %d contains raw byte 0x%02x: %r" % (path, i + 1, b, line))
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            fail("%s line %d is not valid UTF-8: %r" % (path, i + 1, line))


def raw_request(demo, head):
    """Send one raw request; return the status code (0 if the server sent none)."""
    s = socket.create_connection(("127.0.0.1", demo.port), timeout=5)
    try:
        s.sendall(head)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        # Read the rest so the response completes before the socket closes.
        s.settimeout(2)
        try:
            while s.recv(65536):
                pass
        except socket.timeout:
            pass
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return int(m.group(1)) if m else 0
    finally:
        s.close()


def send_traffic(demo):
    """A mix of statuses and hostile bytes. Returns the number of responses."""
    count = 0
    for method, target, headers, body in [
        ("GET", "/hello", {"User-Agent": "curl/7.88.1", "Referer": "http://example.com/"}, None),
        ("GET", "/nowhere", {}, None),                     # 404: no route
        ("DELETE", "/hello", {}, None),                    # 405: no responder
        ("GET", "/notes/abc", {}, None),                   # 404: {id:int} does not match
        ("POST", "/notes", {"Content-Type": "application/json"}, b"{not json"),  # 400
        ("POST", "/notes", {"Content-Type": "application/json"}, b"x" * (2 << 20)),  # 413
        ("HEAD", "/hello", {}, None),
        ("GET", "/hello?q=%0d%0a%1b%22", {}, None),        # encoded CR LF ESC quote
        ("GET", "/health", {}, None),
    ]:
        try:
            status, _, _ = demo.request(method, target, body=body, headers=headers)
            check(status > 0, "%s %s: no status" % (method, target))
        except (ConnectionError, OSError):
            # A 413 may close the connection before the client finished sending.
            pass
        count += 1
    for head in [
        b"GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: " + ESC_UA + b"\r\nConnection: close\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: " + BAD_UTF8_UA
        + b"\r\nReferer: " + BAD_REFERER + b"\r\nConnection: close\r\n\r\n",
        b"GET /caf\xc3\xa9/\xff\"q\"\\ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /x%0d%0aInjected:%20line HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]:
        status = raw_request(demo, head)
        check(status > 0, "no response to raw request %r" % head[:60])
        count += 1
    return count


def goaccess_invalid(path):
    """Run GoAccess on a combined log; return (total, failed) from its JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        r = subprocess.run(["goaccess", path, "--log-format=COMBINED", "--no-global-config",
                            "-o", report], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60)
        check(r.returncode == 0, "goaccess failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
        with open(report) as f:
            general = json.load(f)["general"]
    return general["total_requests"], general["failed_requests"]


def test_combined_default():
    with Demo() as demo:
        sent = send_traffic(demo)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        path = demo.path("var", "log", "access.log")
        for p in (path, demo.path("var", "log", "app.log")):
            mode = stat.S_IMODE(os.stat(p).st_mode)
            check(mode == 0o640, "%s has mode %o, expected 640" % (p, mode))
        lines = read_lines(path)
        check(len(lines) == sent, "access.log has %d lines for %d requests" % (len(lines), sent))
        assert_clean(lines, path)
        for line in lines:
            check(COMBINED.match(line) is not None, "not a combined line: %r" % line)
        statuses = [int(COMBINED.match(l).group(5)) for l in lines]
        for code in (200, 404, 405, 400, 413):
            check(code in statuses, "no %d line in access.log: %r" % (code, statuses))
        text = b"\n".join(lines)
        # Escapes as nginx writes them.
        check(b"evil\\x1B[31mred\\x1B[0m \\x22quoted\\x22 back\\x5Cslash caf\xc3\xa9" in text,
              "ESC/quote/backslash user agent not escaped as expected:\n%r" % text)
        check(b"bad \\xFF\\xFE \\xC0\\xAF \\xED\\xA0\\x80 \\xF4\\x90\\x80\\x80 end" in text,
              "invalid UTF-8 user agent not escaped per byte:\n%r" % text)
        check(b"\"http://x/\\x7F\\x01\\xC3\"" in text, "hostile referer not escaped:\n%r" % text)
        check(b"\"GET /caf\xc3\xa9/\\xFF\\x22q\\x22\\x5C HTTP/1.1\"" in text,
              "hostile path not escaped:\n%r" % text)
        check(b"/hello?q=%0d%0a%1b%22" in text, "encoded target not logged as sent")
        total, failed = goaccess_invalid(path)
        check(failed == 0, "GoAccess found %d invalid lines of %d" % (failed, total))
        check(total == sent, "GoAccess read %d lines, expected %d" % (total, sent))


def jq_lines(path, expr):
    r = subprocess.run(["jq", "-c", expr, path], capture_output=True, timeout=60)
    check(r.returncode == 0, "jq %s failed on %s: %s" % (expr, path, r.stderr.decode(errors="replace")))
    return r.stdout.split(b"\n")[:-1]


def test_json():
    config = "[log.access]\nformat = json\nfile = var/log/access.json\n"
    with Demo(config=config) as demo:
        sent = send_traffic(demo)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        path = demo.path("var", "log", "access.json")
        lines = read_lines(path)
        check(len(lines) == sent, "access.json has %d lines for %d requests" % (len(lines), sent))
        assert_clean(lines, path)
        # jq parses every line; the count matches.
        check(len(jq_lines(path, ".")) == sent, "jq did not read every line")
        # ECS field names and types.
        rows = [json.loads(x) for x in jq_lines(path, ".")]
        for row in rows:
            for key in ("@timestamp", "log.level", "message", "client.ip",
                        "http.request.method", "url.original", "http.response.status_code",
                        "http.response.body.bytes", "event.duration"):
                check(key in row, "JSON line lacks %s: %r" % (key, row))
            check(isinstance(row["http.response.status_code"], int), "status is not a number")
            check(isinstance(row["event.duration"], int), "event.duration is not a number")
            check(row["log.logger"] == "access", "log.logger is %r" % row.get("log.logger"))
        # Valid UTF-8 reads back to the exact bytes sent (jq -j writes raw).
        uas = jq_lines(path, '.["user_agent.original"] // empty')
        decoded = [json.loads(x).encode("utf-8") for x in uas]
        check(ESC_UA in decoded, "jq did not read the ESC user agent back: %r" % decoded)
        r = subprocess.run(["jq", "-j", 'select(.["user_agent.original"] == $ua) | '
                            '.["user_agent.original"]', "--arg", "ua", ESC_UA.decode(), path],
                           capture_output=True, timeout=60)
        check(r.stdout == ESC_UA, "jq -j gave %r, expected %r" % (r.stdout, ESC_UA))
        # Invalid UTF-8 bytes come back as the code points of the same value.
        check("bad \u00ff\u00fe \u00c0\u00af \u00ed\u00a0\u0080 \u00f4\u0090\u0080\u0080 end"
              .encode("utf-8") in decoded, "invalid UTF-8 user agent: %r" % decoded)


def test_custom_and_skips():
    config = ("[access_log]\n"
              "format = $status $request_method $uri ${field:http.route} \"$http_user_agent\" $request_duration_us\n"
              "skip_paths = /health, /notes*\n"
              "skip_status = 405, 3xx\n")
    with Demo(config=config) as demo:
        for target in ("/hello", "/health", "/notes", "/notes/1", "/nowhere"):
            demo.request("GET", target)
        demo.request("DELETE", "/hello")  # 405, skipped
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        lines = read_lines(demo.path("var", "log", "access.log"))
        got = [l.rsplit(b" ", 1)[0] for l in lines]
        # http.client sends no User-Agent, so the field is "-".
        # Sorted: lines follow completion order, which for separate short
        # connections need not be the order the requests were sent in.
        expected = [b'200 GET /hello /hello "-"', b'404 GET /nowhere - "-"']
        check(sorted(got) == sorted(expected), "custom format lines: %r" % lines)
        for l in lines:
            check(re.match(rb"^\d+$", l.rsplit(b" ", 1)[1]) is not None,
                  "request_duration_us is not a number: %r" % l)


def test_bad_config():
    from talon_e2e import DEMO
    cases = [
        ("[access_log]\nformat = $remote_addr $bogus\n", ["bad.ini:2", "$bogus", "offset 13"]),
        ("[log.access]\nformat = nginx\n", ["bad.ini:2", "unknown format name \"nginx\""]),
        ("[access_log]\n\nskip_status = 2xx, 99\n", ["bad.ini:3", "skip_status", "\"99\""]),
        ("[access_log]\nskip_paths = health\n", ["bad.ini:2", "skip_paths", "\"health\""]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        ini = os.path.join(tmp, "bad.ini")
        for text, needles in cases:
            with open(ini, "w") as f:
                f.write(text)
            r = subprocess.run([DEMO, "--listen", "127.0.0.1:0", "--config", ini], cwd=tmp,
                               capture_output=True, timeout=20)
            check(r.returncode != 0, "talon-demo started with %r" % text)
            err = r.stderr.decode(errors="replace")
            for needle in needles:
                check(needle in err, "config error for %r lacks %r: %r" % (text, needle, err))


def test_64k_user_agent():
    """A 64 KiB hostile user agent is logged whole, escaped, in one line."""
    ua = (b"Mozilla/5.0 \x1b[2J \"x\" \\ \xff caf\xc3\xa9 " * 2048)[:64 * 1024]
    config = ("[server]\nmax_header_size = 256k\n"
              "[log.access]\nformat = json\nfile = var/log/access.json\n"
              "[log.access.2]\nformat = combined\nfile = var/log/access.log\n")
    with Demo(config=config) as demo:
        status = raw_request(demo, b"GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: " + ua
                             + b"\r\nConnection: close\r\n\r\n")
        check(status == 200, "64 KiB user agent: status %d" % status)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        combined = read_lines(demo.path("var", "log", "access.log"))
        check(len(combined) == 1, "combined log has %d lines" % len(combined))
        assert_clean(combined, "access.log")
        m = COMBINED.match(combined[0])
        check(m is not None, "not a combined line: %r" % combined[0][:200])
        # Trailing whitespace is not part of a field value (RFC 9110
        # section 5.5); the 64 KiB cut may end the agent with a space.
        ua = ua.rstrip(b" \t")
        expected = (ua.replace(b"\\", b"\\x5C").replace(b"\x1b", b"\\x1B")
                    .replace(b"\"", b"\\x22").replace(b"\xff", b"\\xFF"))
        check(m.group(8) == expected, "user agent not logged whole: %d bytes, expected %d"
              % (len(m.group(8)), len(expected)))
        path = demo.path("var", "log", "access.json")
        check(len(read_lines(path)) == 1, "JSON log does not have exactly one line")
        got = jq_lines(path, '.["user_agent.original"]')
        check(len(got) == 1, "jq read %d values" % len(got))
        want = ua.decode("latin-1").replace("\xc3\xa9", "\u00e9")
        check(json.loads(got[0]) == want, "jq did not read the 64 KiB user agent back")


def test_ids_and_user():
    """Request id, trace id, route and the authenticated user reach the
    record; the bearer token and the password do not."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    config = ("[log.access]\nformat = json\nfile = var/log/access.json\n"
              "[log.access.2]\nformat = combined\nfile = var/log/access.log\n")
    with Demo(config=config) as demo:
        status, _, body = demo.request("POST", "/login", body=json.dumps(
            {"user": "bob", "password": "bob-user-demo"}),
            headers={"Content-Type": "application/json"})
        check(status == 200, "login: status %d %r" % (status, body))
        token = json.loads(body)["token"]
        status, headers, _ = demo.request("GET", "/notes", headers={
            "Authorization": "Bearer " + token, "X-Request-ID": "req-abc-123",
            "traceparent": "00-%s-00f067aa0ba902b7-01" % trace})
        check(status == 200, "GET /notes: status %d" % status)
        check(headers.get("x-request-id") == "req-abc-123",
              "X-Request-ID not echoed: %r" % headers.get("x-request-id"))
        status, headers, _ = demo.request("GET", "/notes/12345")
        generated = headers.get("x-request-id", "")
        check(re.match(r"^[0-9a-f]{32}$", generated) is not None,
              "generated request id is not 128-bit hex: %r" % generated)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())

        rows = [json.loads(x) for x in jq_lines(demo.path("var", "log", "access.json"), ".")]
        check(len(rows) == 3, "access.json has %d lines, expected 3" % len(rows))
        # Lines are written on completion, which for requests on different
        # connections need not follow the order the responses arrived in.
        by_target = {r.get("url.original"): r for r in rows}
        login, notes, missing = (by_target.get(t, {}) for t in ("/login", "/notes", "/notes/12345"))
        check(login.get("http.route") == "/login", "route of the login: %r" % login)
        check(notes.get("user.id") == "bob", "user.id of GET /notes: %r" % notes.get("user.id"))
        check(notes.get("http.request.id") == "req-abc-123", "request id: %r" % notes)
        check(notes.get("trace.id") == trace, "trace id: %r" % notes.get("trace.id"))
        check(notes.get("http.route") == "/notes", "route: %r" % notes.get("http.route"))
        check(missing.get("http.request.id") == generated, "generated id not logged: %r" % missing)
        check(missing.get("http.route") == "/notes/{id:int}", "route: %r" % missing.get("http.route"))
        check(missing.get("event.outcome") == "failure", "outcome of a 404: %r" % missing)
        combined = [x for x in read_lines(demo.path("var", "log", "access.log"))
                    if b'"GET /notes HTTP/1.1"' in x]
        check(len(combined) == 1 and COMBINED.match(combined[0]).group(2) == b"bob",
              "$remote_user of GET /notes: %r" % combined)
        for name in ("access.json", "access.log"):
            with open(demo.path("var", "log", name), "rb") as f:
                data = f.read()
            check(token.encode() not in data, "%s contains the bearer token" % name)
            check(b"bob-user-demo" not in data, "%s contains the password" % name)


def test_example_ini():
    """examples/demo/talon-demo.ini loads, and its skip_paths applies."""
    from talon_e2e import SOURCE
    with open(os.path.join(SOURCE, "examples", "demo", "talon-demo.ini")) as f:
        config = f.read()
    with Demo(config=config) as demo:
        demo.request("GET", "/health")
        demo.request("GET", "/hello")
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        lines = read_lines(demo.path("var", "log", "access.log"))
        check(len(lines) == 1 and b'"GET /hello HTTP/1.1" 200' in lines[0],
              "example configuration: access.log is %r" % lines)


def main():
    test_example_ini()
    test_ids_and_user()
    test_64k_user_agent()
    test_combined_default()
    test_json()
    test_custom_and_skips()
    test_bad_config()
    print("ok")


if __name__ == "__main__":
    main()
