#!/usr/bin/python3
"""Held responses (talon_req_hold/talon_req_release) through the real engine:
suspend and resume, release errors, clients that leave while held, and
SIGTERM while requests are held. Uses the demo's --test-routes route
GET /debug/hold?ms=N&holds=K&status=S."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402


def held_on_keep_alive(demo):
    c = demo.conn()
    c.connect()
    local = c.sock.getsockname()
    for query in ("ms=200", "ms=100&holds=4", "ms=0", "ms=0&holds=3"):
        c.request("GET", "/debug/hold?" + query)
        r = c.getresponse()
        body = json.loads(r.read())
        check(r.status == 200, "hold %s: status %d" % (query, r.status))
        check("held_ms" in body, "hold %s: body %r" % (query, body))
        check(not r.will_close, "hold %s closed the connection" % query)
    c.request("GET", "/hello")
    r = c.getresponse()
    r.read()
    check(r.status == 200 and c.sock.getsockname() == local,
          "the connection was not reused after held responses")
    c.close()


def release_with_error(demo):
    for query, expected in (("ms=0&status=503", 503), ("ms=150&status=500", 500),
                            ("ms=100&holds=3&status=502", 502)):
        status, headers, body = demo.request("GET", "/debug/hold?" + query)
        check(status == expected, "hold %s: status %d, expected %d" % (query, status, expected))
        doc = json.loads(body)
        check(doc.get("description") == "released with an error", "hold %s: body %r" % (query, doc))
        check(headers.get("content-type") == "application/json", "hold %s: content type" % query)


def many_concurrent_holds(demo):
    results = []

    def one():
        try:
            status, _, _ = demo.request("GET", "/debug/hold?ms=300", timeout=20)
            results.append(status)
        except Exception as e:  # reported below
            results.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(results == [200] * 40, "concurrent holds: %r" % results)


def clients_leave_while_held(demo):
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", demo.port))
        s.sendall(b"GET /debug/hold?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.01)
        s.close()
    time.sleep(0.5)
    check(demo.proc.poll() is None, "talon-demo died after clients left while held")
    status, _, _ = demo.request("GET", "/health")
    check(status == 200, "GET /health after abandoned holds: %d" % status)


def sigterm_waits_for_held(demo):
    result = {}

    def held():
        try:
            status, _, body = demo.request("GET", "/debug/hold?ms=1500", timeout=20)
            result["status"] = status
            result["body"] = body
        except Exception as e:  # reported below
            result["error"] = repr(e)

    t = threading.Thread(target=held)
    t.start()
    time.sleep(0.4)
    code = demo.stop()
    t.join()
    check(result.get("status") == 200, "held request during shutdown: %r" % result)
    check(json.loads(result["body"])["held_ms"] == 1500, "held body: %r" % result)
    check(code == 0, "exit code %d after SIGTERM with a held request" % code)


def drain_timeout_answers_503():
    with Demo(args=["--test-routes"], config="[server]\ndrain_timeout = 1\n") as demo:
        result = {}

        def held():
            try:
                status, _, body = demo.request("GET", "/debug/hold?ms=8000", timeout=20)
                result["status"] = status
                result["body"] = body
            except Exception as e:  # reported below
                result["error"] = repr(e)

        t = threading.Thread(target=held)
        t.start()
        time.sleep(0.4)
        code = demo.stop()
        t.join()
        check(result.get("status") == 503, "held past the drain timeout: %r" % result)
        check(code == 0, "exit code %d after the drain timeout" % code)


def main():
    with Demo() as demo:
        status, _, _ = demo.request("GET", "/debug/hold")
        check(status == 404, "/debug/hold exists without --test-routes: %d" % status)
        demo.stop()
    with Demo(args=["--test-routes"]) as demo:
        held_on_keep_alive(demo)
        release_with_error(demo)
        many_concurrent_holds(demo)
        clients_leave_while_held(demo)
        sigterm_waits_for_held(demo)
    drain_timeout_answers_503()
    print("ok")


if __name__ == "__main__":
    main()
