#!/usr/bin/python3
"""Rate-limited warnings: when a burst of connection-limit 503s passes the
engine's limit of warnings a second, the count of the suppressed ones
reaches the app log even though no later warning follows, and the logged
and suppressed warnings add up to the number of rejections."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402

REJECTED = 60


def main():
    with Demo(config="[server]\nconnection_limit = 1\n") as demo:
        held = demo.conn()
        held.request("GET", "/health")
        r = held.getresponse()
        r.read()
        check(r.status == 200, "first connection: status %d" % r.status)
        for i in range(REJECTED):
            status, _, _ = demo.request("GET", "/health")
            check(status == 503, "connection %d over the limit: status %d" % (i, status))

        app_log = demo.path("var", "log", "app.log")
        pattern = re.compile(r"(\d+) more HTTP engine warnings suppressed")
        suppressed = []
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(app_log) as f:
                text = f.read()
            suppressed = [int(n) for n in pattern.findall(text)]
            logged = text.count("rejected with 503")
            if logged + sum(suppressed) >= REJECTED:
                break
            time.sleep(0.2)
        check(suppressed, "no count of suppressed warnings in %s after 10 s:\n%s"
              % (app_log, text[-2000:]))
        check(logged + sum(suppressed) == REJECTED,
              "%d warnings logged and %d suppressed, expected %d in all"
              % (logged, sum(suppressed), REJECTED))
        held.close()
        check(demo.stop() == 0, "talon-demo did not exit cleanly")
    print("ok")


if __name__ == "__main__":
    main()
