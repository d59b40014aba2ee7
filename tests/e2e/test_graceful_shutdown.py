#!/usr/bin/python3
"""Graceful shutdown under load: client threads hammer talon-demo over
keep-alive connections (GET /hello, POST /notes, held responses) while it
receives SIGTERM. Every request must either complete with its full body or
be refused cleanly (connection refused, or closed before any response byte);
no response may be cut in the middle. The exit code must be 0."""
import http.client
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402

CLEAN_REFUSALS = (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                  http.client.RemoteDisconnected)


class Hammer(threading.Thread):
    def __init__(self, demo, kind, stop):
        super().__init__()
        self.demo = demo
        self.kind = kind
        self.stop = stop
        self.completed = 0
        self.refused = 0
        self.cut = []

    def one(self, c):
        if self.kind == "hello":
            c.request("GET", "/hello")
        elif self.kind == "notes":
            c.request("POST", "/notes", json.dumps({"text": "x" * 200}),
                      {"Content-Type": "application/json"})
        else:
            c.request("GET", "/debug/hold?ms=50")
        r = c.getresponse()
        try:
            body = r.read()
        except http.client.IncompleteRead as e:
            self.cut.append("%s: IncompleteRead after %d bytes" % (self.kind, len(e.partial)))
            return False
        length = r.getheader("Content-Length")
        if length is not None and int(length) != len(body):
            self.cut.append("%s: %d of %s body bytes" % (self.kind, len(body), length))
            return False
        try:
            json.loads(body)
        except ValueError:
            self.cut.append("%s: body is not JSON: %r" % (self.kind, body[:60]))
            return False
        self.completed += 1
        return not r.will_close

    def run(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            c = self.demo.conn(timeout=10)
            try:
                while self.one(c):
                    pass
            except CLEAN_REFUSALS:
                self.refused += 1
                if self.stop.is_set():
                    return
                time.sleep(0.005)
            except Exception as e:  # anything else is a failure, reported below
                self.cut.append("%s: %r" % (self.kind, e))
                return
            finally:
                c.close()
            if self.stop.is_set():
                return


def main():
    with Demo(args=["--test-routes", "--threads", "2"]) as demo:
        stop = threading.Event()
        hammers = [Hammer(demo, kind, stop)
                   for kind in ("hello", "hello", "hello", "notes", "notes", "hold", "hold")]
        for h in hammers:
            h.start()
        time.sleep(1.5)
        before = sum(h.completed for h in hammers)
        check(before > 0, "no request completed before SIGTERM")
        demo.proc.send_signal(signal.SIGTERM)
        try:
            code = demo.proc.wait(30)
        except Exception:
            code = None
        stop.set()
        for h in hammers:
            h.join()
        cut = [c for h in hammers for c in h.cut]
        check(not cut, "responses cut during shutdown: %s" % cut[:5])
        check(code == 0, "talon-demo exited with %r after SIGTERM under load; stderr:\n%s"
              % (code, demo.read_stderr()[-2000:]))
        total = sum(h.completed for h in hammers)
        print("ok: %d requests completed, %d completed after SIGTERM, %d connections refused"
              % (total, total - before, sum(h.refused for h in hammers)))


if __name__ == "__main__":
    main()
