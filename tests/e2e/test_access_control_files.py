#!/usr/bin/python3
"""File permissions whatever the umask: talon-demo runs under umask 000 and
every file it creates -- access and app logs (0640), rotated and .gz logs,
trail files, rotated trail files and .torn files (0600), the key state and
the verification key (0600) -- has exactly its mode, and nothing it creates
is world-readable or group-writable. Directories are 0750 or stricter."""
import glob
import json
import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check, fail  # noqa: E402
from audit_e2e import check_verify  # noqa: E402

CONFIG = """
[log.app]
file = var/log/app.log
[log.access]
file = var/log/access.log
rotate_size = 4k
rotate_keep = 4
rotate_gzip = true
flush_interval_ms = 50
[audit]
rotate_size = 8k
"""


def traffic(demo, n):
    for i in range(n):
        status, _, _ = demo.request("POST", "/notes", body=json.dumps({"text": "n%d" % i}),
                                    headers={"Content-Type": "application/json"})
        check(status == 201, "POST /notes: %d" % status)


def expected_mode(rel):
    """The mode a file the demo created must have, by its path."""
    name = os.path.basename(rel)
    if rel.startswith("var/log/"):
        return 0o640
    if rel.startswith("var/audit/") or name == "audit-verify.key":
        return 0o600
    return None


def main():
    old = os.umask(0)
    try:
        demo = Demo(config=CONFIG)
        demo.start()
    finally:
        os.umask(old)
    try:
        traffic(demo, 150)
        demo.kill9()
        # A record cut by the crash: the restart moves it to a .torn file.
        active = sorted(glob.glob(demo.path("var", "audit", "audit-*.jsonl")))[-1]
        with open(active, "ab") as f:
            f.write(b'{"v":1,"seq":999999,"torn')
        os.umask(0)
        try:
            demo.start()
        finally:
            os.umask(old)
        traffic(demo, 100)
        # Rotated files are compressed from the second rotation on
        # (access.log.1 stays plain), so keep the log growing until one is.
        deadline = time.time() + 20
        while not glob.glob(demo.path("var", "log", "access.log.*.gz")) and time.time() < deadline:
            traffic(demo, 20)
            time.sleep(0.1)
        check(demo.stop() == 0, "talon-demo did not exit 0; stderr:\n" + demo.read_stderr())
        check_verify(demo)

        seen = {}
        harness = {"stderr.txt", "talon.ini"}  # made by this test, not by the demo
        for root, dirs, files in os.walk(demo.workdir):
            for d in dirs:
                path = os.path.join(root, d)
                mode = stat.S_IMODE(os.stat(path).st_mode)
                check(mode & 0o027 == 0, "directory %s has mode %o: group-writable or open to "
                      "others" % (path, mode))
            for name in files:
                if root == demo.workdir and name in harness:
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, demo.workdir)
                mode = stat.S_IMODE(os.lstat(path).st_mode)
                seen[rel] = mode
                if rel == "port":
                    # The port file is public, like a pid file, but no one else may write it.
                    check(mode == 0o644, "the port file has mode %o, expected 644" % mode)
                    continue
                check(mode & 0o007 == 0, "%s has mode %o: others may read it" % (rel, mode))
                check(mode & 0o020 == 0, "%s has mode %o: the group may write it" % (rel, mode))
                want = expected_mode(rel)
                if want is not None:
                    check(mode == want, "%s has mode %o, expected %o" % (rel, mode, want))
        kinds = {
            "rotated log": [r for r in seen if r.startswith("var/log/access.log.1")],
            "compressed log": [r for r in seen if r.endswith(".gz")],
            "rotated trail": [r for r in seen if r.startswith("var/audit/audit-0000000")],
            "torn record": [r for r in seen if ".torn" in r],
            "key state": [r for r in seen if r.endswith("key.state")],
            "verification key": [r for r in seen if r.endswith("audit-verify.key")],
        }
        for kind, paths in kinds.items():
            check(paths, "no %s file was made, so its mode went unchecked: %r"
                  % (kind, sorted(seen)))
        check(len(kinds["rotated trail"]) >= 2, "the trail did not rotate: %r" % sorted(seen))
        print("ok: %d files under umask 000, none open to others: %s"
              % (len(seen), ", ".join("%s %o" % (r, m) for r, m in sorted(seen.items()))))
    finally:
        demo.cleanup()


if __name__ == "__main__":
    main()
