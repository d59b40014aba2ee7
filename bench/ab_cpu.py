#!/usr/bin/python3
"""Compare the server CPU per request of two talon builds, interleaved.

Usage: ab_cpu.py [--post] BUILD_A BUILD_B [ROUNDS [SECONDS]]

Each round starts talon-demo from BUILD_A and from BUILD_B in turn, and
the order alternates from round to round. Each start runs `wrk -t2 -c64`
on GET /hello for SECONDS after a 2 s warm-up, once with the access log off
and once in the combined format. With --post it runs POST /notes
(bench/audit_post.lua) instead, once unaudited and once audited in sync
mode, both with the combined access log. The CPU time of the server comes
from /proc/<pid>/stat (user and user + system). The medians over the rounds and the ratios B/A are
printed last. Measuring both builds within one run, alternating, keeps the
load of other processes from favouring one of them, which two separate
bench/run reports cannot do.
"""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER = ("[server]\nconnection_limit = 20000\nconnection_timeout = 300\n\n"
          "[log.app]\nlevel = warn\nfile = var/log/app.log\n\n")
ACCESS_COMBINED = ("[access_log]\nenabled = true\n\n[log.access]\nformat = combined\n"
                   "file = var/log/access.log\nlevel = info\n\n")


def audit_policy(*rules):
    """The [audit] and [audit.policy] sections with these rules."""
    return ("[audit]\ndir = var/audit\n\n[audit.policy]\n"
            + "".join("rule = %s\n" % r for r in rules) + "\n")


CONFIGS = {
    "off": SERVER + audit_policy("* * none") + "[access_log]\nenabled = false\n",
    "combined": SERVER + audit_policy("* * none") + ACCESS_COMBINED,
}
POST_CONFIGS = {
    "post-none": SERVER + ACCESS_COMBINED + audit_policy("* * none"),
    "post-sync": SERVER + ACCESS_COMBINED + audit_policy("POST /notes metadata sync", "* * none"),
}
POST_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "audit_post.lua")


def cpu_seconds(pid):
    """(user, user + system) CPU seconds of pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    user, system = int(fields[11]), int(fields[12])
    return user / CLOCK_TICKS, (user + system) / CLOCK_TICKS


def start_demo(build, workdir, config):
    with open(os.path.join(workdir, "talon.ini"), "w") as f:
        f.write(config)
    port_file = os.path.join(workdir, "port")
    proc = subprocess.Popen([os.path.join(build, "talon-demo"), "--listen", "127.0.0.1:0",
                             "--port-file", port_file, "--threads", "2",
                             "--config", "talon.ini"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("ab_cpu: talon-demo of %s exited with %d; run it by hand to see why"
                     % (build, proc.returncode))
        try:
            with open(port_file) as f:
                text = f.read().strip()
            if text:
                return proc, int(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("ab_cpu: talon-demo of %s did not write its port within 20 s" % build)


def measure(build, config, seconds, post):
    """Return (user us/request, total us/request, requests/s) of one run."""
    workdir = tempfile.mkdtemp(prefix="talon-ab-")
    proc, port = start_demo(build, workdir, config)
    try:
        if post:
            url = "http://127.0.0.1:%d/notes" % port
            script = ["-s", POST_SCRIPT]
        else:
            url = "http://127.0.0.1:%d/hello" % port
            script = []
        subprocess.run(["wrk", "-t2", "-c64", "-d2s"] + script + [url], capture_output=True,
                       check=True)
        user0, total0 = cpu_seconds(proc.pid)
        out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % seconds] + script + [url],
                             capture_output=True, text=True, check=True).stdout
        user1, total1 = cpu_seconds(proc.pid)
        match = re.search(r"(\d+) requests in", out)
        if match is None:
            sys.exit("ab_cpu: no request count in the output of wrk:\n" + out)
        requests = int(match.group(1))
        return ((user1 - user0) / requests * 1e6, (total1 - total0) / requests * 1e6,
                requests / seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    argv = sys.argv[1:]
    post = "--post" in argv
    argv = [a for a in argv if a != "--post"]
    if len(argv) < 2 or shutil.which("wrk") is None:
        sys.exit(__doc__.strip() + "\n\nab_cpu: needs two build directories and wrk")
    builds = {"A": os.path.abspath(argv[0]), "B": os.path.abspath(argv[1])}
    rounds = int(argv[2]) if len(argv) > 2 else 5
    seconds = int(argv[3]) if len(argv) > 3 else 8
    configs = POST_CONFIGS if post else CONFIGS
    samples = {}
    for r in range(rounds):
        order = "AB" if r % 2 == 0 else "BA"
        for name, config in configs.items():
            for label in order:
                user, total, rate = measure(builds[label], config, seconds, post)
                samples.setdefault((label, name), []).append((user, total, rate))
                print("round %d %s %-8s user %.2f total %.2f us/request, %.0f requests/s"
                      % (r + 1, label, name, user, total, rate), flush=True)
    print()
    for name in configs:
        medians = {}
        for label in "AB":
            values = samples[(label, name)]
            medians[label] = tuple(statistics.median(v[i] for v in values) for i in range(3))
            print("%s %-9s median user %.2f total %.2f us/request, %.0f requests/s"
                  % ((label, name) + medians[label]))
        print("B/A %-9s user %.3f total %.3f requests/s %.3f"
              % (name, medians["B"][0] / medians["A"][0], medians["B"][1] / medians["A"][1],
                 medians["B"][2] / medians["A"][2]))
    if post:
        for label in "AB":
            ratios = [s[2] / n[2] for s, n in zip(samples[(label, "post-sync")],
                                                  samples[(label, "post-none")])]
            print("%s sync/unaudited requests/s: median %.3f (%.3f-%.3f)"
                  % (label, statistics.median(ratios), min(ratios), max(ratios)))


if __name__ == "__main__":
    main()
