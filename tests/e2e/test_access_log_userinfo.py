#!/usr/bin/python3
"""The userinfo of an absolute-form target or of a Referer
("http://user:password@host/") reaches no access-log file: every format
writes it as [REDACTED], and the host, path and other parameters stay as
sent."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402

TARGET_SECRET = "ui-Target-4d1f"
REFERER_SECRET = "ui-Referer-8b3e"

CONFIG = """
[log.access]
file = var/log/access.log
format = combined
[log.access.2]
file = var/log/access.json
format = json
[log.access.3]
file = var/log/access.custom
format = $request_uri $http_referer
"""


def main():
    with Demo(config=CONFIG) as demo:
        request = ("GET http://bob:%s@h.example/hello?q=kept-Value HTTP/1.1\r\n"
                   "Host: h.example\r\n"
                   "Referer: https://%s@client.example/page\r\n"
                   "Connection: close\r\n\r\n" % (TARGET_SECRET, REFERER_SECRET))
        reply = demo.raw(request.encode())
        check(reply.startswith(b"HTTP/1.1 200 "), "absolute-form GET: expected 200, got %r"
              % reply[:60])
        check(demo.stop() == 0, "talon-demo did not exit cleanly")

        for name in ("access.log", "access.json", "access.custom"):
            with open(demo.path("var", "log", name)) as f:
                text = f.read()
            check(text.count("\n") == 1, "%s: expected 1 line, got %r" % (name, text))
            for secret in (TARGET_SECRET, REFERER_SECRET):
                check(secret not in text, "%s logs the userinfo %s: %r" % (name, secret, text))
            check("http://[REDACTED]@h.example/hello?q=kept-Value" in text,
                  "%s: target not redacted as expected: %r" % (name, text))
            check("https://[REDACTED]@client.example/page" in text,
                  "%s: Referer not redacted as expected: %r" % (name, text))

        with open(demo.path("var", "log", "access.json")) as f:
            record = json.loads(f.readline())
        check(record["url.original"] == "http://[REDACTED]@h.example/hello?q=kept-Value",
              "url.original: %r" % record["url.original"])
    print("ok")


if __name__ == "__main__":
    main()
