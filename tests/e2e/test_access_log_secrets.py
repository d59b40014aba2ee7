#!/usr/bin/python3
"""Secrets sent in query strings and in the Referer reach no file the demo
writes: every access-log format (combined, json, logfmt, text and a custom
format with $request_uri and $http_referer) logs them as [REDACTED], the
trail's recorded query too, and the other parameters stay as sent. With
redact_query = false the target is logged as sent, as nginx does."""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from talon_e2e import Demo, check  # noqa: E402

SECRETS = {
    "password": "qs-Password-5e1c",
    "access_token": "qs-Token-8a2d",
    "api_key": "qs-Apikey-3f7b",
    "pass": "qs-Pass-0c9e",
    "pwd": "qs-Pwd-6d4a",
    "Session": "qs-Session-1b8f",
}
ENCODED_NAME_SECRET = "qs-Encoded-7e3c"   # sent as pass%77ord=
REFERER_SECRET = "ref-Token-2a6e"         # in the Referer's query
FRAGMENT_SECRET = "ref-Fragment-9c1d"     # in the Referer's fragment
ALL_SECRETS = list(SECRETS.values()) + [ENCODED_NAME_SECRET, REFERER_SECRET, FRAGMENT_SECRET]

CONFIG = """
[log.access]
file = var/log/access.log
format = combined
[log.access.2]
file = var/log/access.json
format = json
[log.access.3]
file = var/log/access.logfmt
format = logfmt
[log.access.4]
file = var/log/access.txt
format = text
[log.access.5]
file = var/log/access.custom
format = escape=json {"uri":"$request_uri","req":"$request","ref":"$http_referer"}
[audit.policy]
rule = * * request sync
"""


def every_file(root):
    for dirpath, _, names in os.walk(root):
        for name in names:
            yield os.path.join(dirpath, name)


def send(demo):
    query = urllib.parse.urlencode(list(SECRETS.items()) + [("q", "kept-Value")])
    target = "/notes?" + query + "&pass%77ord=" + ENCODED_NAME_SECRET
    referer = ("https://client.example/cb?token=%s&page=3#access_token=%s&state=xyz"
               % (REFERER_SECRET, FRAGMENT_SECRET))
    status, _, _ = demo.request("GET", target, headers={"Referer": referer,
                                                        "X-Request-ID": "secret-query"})
    check(status == 200, "GET %s: expected 200, got %d" % (target, status))
    return target


def main():
    with Demo(config=CONFIG) as demo:
        send(demo)
        check(demo.stop() == 0, "talon-demo did not exit cleanly")
        files = list(every_file(demo.workdir))
        for name in ("access.log", "access.json", "access.logfmt", "access.txt",
                     "access.custom"):
            path = demo.path("var", "log", name)
            with open(path) as f:
                text = f.read()
            check("secret-query" in text or name in ("access.log", "access.custom"),
                  "%s has no line of the request" % name)
            check("kept-Value" in text, "%s lost the parameter q: %r" % (name, text))
            check("[REDACTED]" in text, "%s has no [REDACTED]: %r" % (name, text))
            check("page=3" in text or name in ("access.txt",),
                  "%s lost the Referer's other parameters" % name)
        with open(demo.path("var", "log", "access.json")) as f:
            rec = [json.loads(l) for l in f if "secret-query" in l][0]
        check(rec["url.original"].startswith("/notes?password=[REDACTED]&access_token=[REDACTED]"),
              "url.original: %r" % rec["url.original"])
        check(rec["http.request.referrer"] ==
              "https://client.example/cb?token=[REDACTED]&page=3#access_token=[REDACTED]"
              "&state=xyz", "referrer: %r" % rec["http.request.referrer"])
        check(any("/audit/" in f for f in files), "no trail file in %s" % demo.workdir)
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            for secret in ALL_SECRETS:
                check(secret.encode() not in data, "secret %r found in %s" % (secret, path))

    # Turned off: the target is logged as sent.
    with Demo(config="[access_log]\nredact_query = false\n") as demo:
        target = send(demo)
        check(demo.stop() == 0, "talon-demo did not exit cleanly")
        with open(demo.path("var", "log", "access.log")) as f:
            text = f.read()
        check(target in text, "redact_query = false: target not logged as sent: %r" % text)
    print("ok")


if __name__ == "__main__":
    main()
