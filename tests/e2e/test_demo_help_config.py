#!/usr/bin/python3
"""talon-demo's help and configuration are documented where a user looks:
--help lists --hash-password among the other options; every key [server]
accepts (as listed by its unknown-key error) is in docs/framework.md and,
commented, in examples/demo/talon-demo.ini, which still loads; and with
--config the startup banner prints the log paths in use, not "as set by
[log.app] in the configuration"."""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import DEMO, SOURCE, Demo, check  # noqa: E402


def main():
    r = subprocess.run([DEMO, "--help"], stdout=subprocess.PIPE, timeout=30)
    text = r.stdout.decode()
    check(r.returncode == 0, "--help exit %d" % r.returncode)
    options = [line.split()[0] for line in text.splitlines() if line.startswith("  --")]
    check("--hash-password" in options and options[-1] == "--help",
          "--hash-password is not in the option list: %r\n%s" % (options, text))
    block = text[text.index("  --listen"):text.index("  --help")]
    check("--hash-password" in block, "--hash-password is apart from the options:\n" + text)
    check("/login" in text and "/audit" in text, "--help does not name every route:\n" + text)

    work = tempfile.mkdtemp(prefix="talon-e2e-")
    with open(os.path.join(work, "bad.ini"), "w") as f:
        f.write("[server]\nbogus = 1\n")
    r = subprocess.run([DEMO, "--config", "bad.ini"], cwd=work, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode()
    m = re.search(r"\[server\] accepts ([a-z_, ]+)", out)
    check(r.returncode == 2 and m, "unknown [server] key: exit %d, %r" % (r.returncode, out))
    keys = [k.strip() for k in m.group(1).split(",")]
    with open(os.path.join(SOURCE, "docs", "framework.md")) as f:
        doc = f.read()
    section = doc[doc.index("## talon-demo's `[server]` section"):]
    section = section[:section.index("\n## ")]
    example = os.path.join(SOURCE, "examples", "demo", "talon-demo.ini")
    with open(example) as f:
        ini = f.read()
    server_ini = ini[ini.index("\n[server]\n"):]
    server_ini = server_ini[:server_ini.index("\n[", 1)]
    for k in keys:
        check("| `%s` |" % k in section, "[server] key %s is not in docs/framework.md" % k)
        check(re.search(r"^; %s = " % k, server_ini, re.M),
              "[server] key %s is not in talon-demo.ini" % k)

    with Demo(config=ini) as demo:
        status, _, _ = demo.request("GET", "/health")
        check(status == 200, "the example configuration: GET /health %d" % status)

    # More sinks than a fixed table of 8 would hold: every one is listed.
    extra = "".join("[log.extra%d]\nfile = extra%d.log\n" % (i, i) for i in range(1, 10))
    demo = Demo(config="[log.app]\nfile = app-x.log\nlevel = debug\n"
                       "[log.access]\nfile = access-x.log\nformat = json\n" + extra)
    with demo:
        deadline = time.time() + 5
        while "log extra9" not in demo.read_stderr() and time.time() < deadline:
            time.sleep(0.05)
        banner = demo.read_stderr()
        check("app log: app-x.log, level debug" in banner
              and "access log: access-x.log, format json" in banner,
              "the startup banner does not show the configured logs:\n" + banner)
        for i in range(1, 10):
            check("log extra%d: extra%d.log" % (i, i) in banner,
                  "the startup banner leaves out log extra%d:\n%s" % (i, banner))
        check(os.path.exists(demo.path("app-x.log")), "app-x.log was not created")
    print("ok")


if __name__ == "__main__":
    main()
