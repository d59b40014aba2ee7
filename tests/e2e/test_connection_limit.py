#!/usr/bin/python3
"""connection_limit: the connection over the limit gets a 503 with a JSON
body and Retry-After, and the server recovers once connections close."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402


def main():
    with Demo(config="[server]\nconnection_limit = 4\n") as demo:
        held = []
        for i in range(4):
            c = demo.conn()
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            check(r.status == 200, "connection %d under the limit: %d" % (i, r.status))
            held.append(c)

        status, headers, body = demo.request("GET", "/health")
        check(status == 503, "fifth connection: status %d, expected 503" % status)
        doc = json.loads(body)
        check("limit of 4 connections" in doc.get("description", ""), "503 body: %r" % doc)
        check(headers.get("retry-after") == "1", "Retry-After: %r" % headers.get("retry-after"))
        check(headers.get("connection") == "close", "the 503 must close its connection")

        for c in held:
            c.close()
        deadline = time.time() + 10
        status = None
        while time.time() < deadline:
            status, _, _ = demo.request("GET", "/health")
            if status == 200:
                break
            time.sleep(0.1)
        check(status == 200, "after closing the connections: status %r" % status)
        code = demo.stop()
        check(code == 0, "exit code %d" % code)
    print("ok")


if __name__ == "__main__":
    main()
