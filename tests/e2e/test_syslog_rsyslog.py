#!/usr/bin/python3
"""Syslog sinks and the audit witness against a real rsyslogd.

The test starts its own rsyslogd (never the system's, never port 514) with
imtcp, imudp and imuxsock on a free 127.0.0.1 port and a private socket.
rsyslogd writes three files: the raw messages (%rawmsg%), the parsed RFC
5424 fields with the structured data as mmpstrucdata decodes it, and the
witness lines alone. talon-demo sends its access log over TCP
(octet counting), its app log over UDP and over the unix socket, and the
audit witness over TCP. Checks:
  - 8 client threads x 100 requests give exactly one access message each;
  - hostile bytes (CR, LF, ESC, ']', '"', '\\', invalid UTF-8) in the path and
    the User-Agent neither split nor break a message, and rsyslog decodes
    the structured data back to talon's escaped form;
  - records logged while rsyslogd is down arrive after it is back;
  - `talon audit verify --witness` on rsyslog's witness file passes on the
    intact trail and names a trail cut after its last seal, which verify
    without the witness cannot see;
  - syslog configuration errors name the file, line, key and accepted values.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import CLI, DEMO, Demo, check, fail  # noqa: E402

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
THREADS, PER_THREAD = 8, 100
SD_ID = "talon@32473"
RFC5424 = re.compile(r"^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) (\S+) (\S+) (\S+) (-|\[.*\])( .*)?$")


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            t.close()
            continue
        t.close()
        u.close()
        if port != 514:
            return port
    fail("no free port for rsyslogd")


class Rsyslog:
    """An rsyslogd of this test, in the foreground, with its own files."""

    def __init__(self, workdir, port):
        self.dir = workdir
        self.port = port
        self.sock = os.path.join(workdir, "log.sock")
        self.raw = os.path.join(workdir, "raw.log")
        self.parsed = os.path.join(workdir, "parsed.log")
        self.witness = os.path.join(workdir, "witness.log")
        os.makedirs(os.path.join(workdir, "work"), exist_ok=True)
        self.conf = os.path.join(workdir, "rsyslog.conf")
        with open(self.conf, "w") as f:
            f.write("""
global(workDirectory="{d}/work" maxMessageSize="256k")
module(load="imuxsock" SysSock.Use="off")
module(load="imtcp")
module(load="imudp")
module(load="mmpstrucdata")
input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" ParseHostname="on" ruleset="talon")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="talon")
input(type="imudp" address="127.0.0.1" port="{port}" ruleset="talon")
template(name="raw" type="string" string="%rawmsg%\\n")
template(name="parsed" type="list") {{
  property(name="pri") constant(value="\\t")
  property(name="msgid") constant(value="\\t")
  property(name="app-name") constant(value="\\t")
  property(name="procid") constant(value="\\t")
  property(name="$!") constant(value="\\t")
  property(name="msg" droplastlf="on") constant(value="\\n")
}}
ruleset(name="talon") {{
  action(type="omfile" file="{raw}" template="raw")
  action(type="mmpstrucdata")
  action(type="omfile" file="{parsed}" template="parsed")
  if $msgid == "audit.witness" then action(type="omfile" file="{witness}" template="raw")
}}
""".format(d=workdir, sock=self.sock, port=port, raw=self.raw, parsed=self.parsed, witness=self.witness))
        self.proc = None

    def start(self):
        pidfile = os.path.join(self.dir, "rsyslogd.pid")
        self.log = open(os.path.join(self.dir, "rsyslogd.out"), "ab")
        self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", self.conf, "-i", pidfile],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            check(self.proc.poll() is None, "rsyslogd exited with %s: %s" % (self.proc.returncode, self.output()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if os.path.exists(self.sock):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        fail("rsyslogd did not listen on 127.0.0.1:%d: %s" % (self.port, self.output()))

    def output(self):
        with open(os.path.join(self.dir, "rsyslogd.out"), errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().split(b"\n")[:-1]
    except FileNotFoundError:
        return []


def parsed_records(rs):
    """(pri, msgid, app, procid, sd dict, msg) for each parsed message."""
    out = []
    for line in read_lines(rs.parsed):
        parts = line.split(b"\t")
        check(len(parts) == 6, "parsed line has %d tab-separated parts, not 6: %r" % (len(parts), line[:300]))
        sd = json.loads(parts[4].decode("utf-8")) if parts[4] not in (b"", b"{ }") else {}
        out.append((int(parts[0]), parts[1].decode(), parts[2].decode(), parts[3].decode(),
                    sd.get("rfc5424-sd", {}).get(SD_ID, {}), parts[5]))
    return out


def wait_for(what, predicate, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    fail("timed out waiting for " + what)


def access_count(rs):
    return sum(1 for r in parsed_records(rs) if r[1] == "access")


def load(demo):
    errors = []

    def worker(t):
        for i in range(PER_THREAD):
            try:
                status, _, _ = demo.request("GET", "/hello?t=%d&i=%d" % (t, i))
                if status != 200:
                    errors.append("t=%d i=%d: status %d" % (t, i, status))
            except OSError as e:
                errors.append("t=%d i=%d: %s" % (t, i, e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    check(not errors, "requests failed: %s" % errors[:3])


def demo_config(port, sock):
    return """
[log.access]
file = syslog+tcp://127.0.0.1:{port}
format = rfc5424
facility = local0
app_name = talon-e2e

[log.app.2]
file = syslog+udp://127.0.0.1:{port}
facility = daemon

[log.app.3]
file = syslog://{sock}
facility = local1

[log.audit.witness]
file = syslog+tcp://127.0.0.1:{port}
facility = auth

[audit]
epoch_seconds = 1
""".format(port=port, sock=sock)


def check_raw_messages(rs):
    """Every raw message is one whole RFC 5424 line without control bytes."""
    lines = read_lines(rs.raw)
    check(lines, "rsyslogd wrote no raw messages")
    for line in lines:
        text = line.decode("utf-8")  # talon escapes invalid UTF-8, so this must decode
        check(RFC5424.match(text), "not an RFC 5424 message: %r" % text[:300])
        check(not re.search(r"[\x00-\x1f\x7f]", text), "control byte in %r" % text[:300])
        # rsyslog writes a received control byte as #ooo (octal): none may arrive.
        check(not re.search(r"#0[0-3][0-7]", text), "rsyslog escaped a control byte in %r" % text[:300])


def check_access(rs):
    records = [r for r in parsed_records(rs) if r[1] == "access"]
    seen = {}
    for pri, msgid, app, procid, sd, msg in records:
        check(pri == 16 * 8 + 6, "access PRI %d, expected local0.info = 134" % pri)
        check(app == "talon-e2e", "APP-NAME %r, expected talon-e2e" % app)
        check(sd.get("http.response.status_code"), "no status in the structured data: %r" % sd)
        url = sd.get("url.original", "")
        seen[url] = seen.get(url, 0) + 1
    for t in range(THREADS):
        for i in range(PER_THREAD):
            url = "/hello?t=%d&i=%d" % (t, i)
            check(seen.get(url) == 1, "%s arrived %d times, expected exactly once" % (url, seen.get(url, 0)))
    return seen


def send_hostile(demo):
    # Path with CR, LF, ESC, ']', '"', '\' and an invalid UTF-8 byte, percent-
    # encoded (url.path is decoded); the same bytes raw in the User-Agent
    # where HTTP allows them (ESC, ']', '"', '\', 0xFF).
    request = (b"GET /hostile%0D%0A%1B%5D%22%5C%FF HTTP/1.1\r\nHost: x\r\n"
               b"User-Agent: ua\x1b]\"\\\xff\r\nConnection: close\r\n\r\n")
    reply = demo.raw(request)
    check(reply.startswith(b"HTTP/1.1 "), "no HTTP reply to the hostile request: %r" % reply[:100])


def check_hostile(rs):
    hostile = [r for r in parsed_records(rs) if r[1] == "access" and r[4].get("url.original", "").startswith("/hostile")]
    check(len(hostile) == 1, "%d hostile access records, expected 1" % len(hostile))
    sd = hostile[0][4]
    # rsyslog decodes the RFC escapes (\" \\ \]); talon's \xHH stays as text.
    # The path bytes CR LF ESC ] " \ 0xFF read back as \x0D\x0A\x1B]"\ then \xFF.
    check(sd["url.path"] == "/hostile\\x0D\\x0A\\x1B]\"\\\\xFF", "url.path decoded by rsyslog as %r" % sd["url.path"])
    check(sd["user_agent.original"] == "ua\\x1B]\"\\\\xFF", "user agent decoded as %r" % sd["user_agent.original"])
    check(hostile[0][5].startswith(b"GET /hostile%0D%0A"), "MSG %r" % hostile[0][5][:100])


def check_app_transports(rs):
    records = parsed_records(rs)
    starts = [r for r in records if r[1] == "app" and b"talon-demo starting on" in r[5]]
    pris = sorted(r[0] for r in starts)
    # daemon.info over UDP (30) and local1.info over the unix socket (142).
    check(30 in pris, "no app record over UDP (daemon.info); PRIs %s" % pris)
    check(142 in pris, "no app record over the unix socket (local1.info); PRIs %s" % pris)


def witness_lines(rs):
    return [l.decode() for l in read_lines(rs.witness)]


def talon(*args):
    return subprocess.run([CLI] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60, universal_newlines=True)


def cut_after_first_shutdown_seal(src, dst):
    """Copy the trail and drop everything after its first shutdown seal."""
    shutil.copytree(src, dst)
    files = sorted(f for f in os.listdir(dst) if re.match(r"audit-\d{8}\.jsonl$", f))
    kept, cut = [], False
    for name in files:
        path = os.path.join(dst, name)
        if cut:
            os.unlink(path)
            continue
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")[:-1]
        for n, line in enumerate(lines):
            rec = json.loads(line)
            if rec["type"] == "audit_epoch_sealed" and rec["data"]["cause"] == "shutdown":
                with open(path, "wb") as f:
                    f.write(b"".join(l + b"\n" for l in lines[:n + 1]))
                kept.append(rec["seq"])
                cut = True
                break
    check(cut, "no shutdown seal in the trail")
    return kept[0]


def check_config_errors(workdir):
    cases = [
        ("[log.access]\nfile = syslog+tcp://127.0.0.1:99999\n", "talon.ini:2: [log.access] file: invalid syslog URL"),
        ("[log.access]\nfile = syslog+tcp://127.0.0.1:5514\nfacility = local9\n",
         "talon.ini:3: [log.access] facility: invalid value 'local9'; expected kern, user"),
        ("[log.access]\nfile = syslog://127.0.0.1:5514\napp_name = my app\n",
         "talon.ini:3: [log.access] app_name: invalid app_name 'my app'"),
        ("[log.app]\nfile = var/log/app.log\nfacility = user\n", "[log.app] facility: applies to the rfc5424 format only"),
    ]
    for text, expected in cases:
        path = os.path.join(workdir, "talon.ini")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([DEMO, "--listen", "127.0.0.1:0", "--config", path], cwd=workdir,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20, universal_newlines=True)
        check(r.returncode != 0, "talon-demo accepted %r" % text)
        check(expected in r.stderr, "error for %r is %r, expected it to contain %r" % (text, r.stderr, expected))


def main():
    check(os.path.exists(RSYSLOGD), "rsyslogd not found; install the rsyslog package (scripts/install-deps)")
    workdir = tempfile.mkdtemp(prefix="talon-syslog-")
    rs = Rsyslog(workdir, free_port()).start()
    demo_dir = os.path.join(workdir, "demo")
    os.makedirs(demo_dir)
    demo = Demo(config=demo_config(rs.port, rs.sock), workdir=demo_dir)
    try:
        demo.start()
        load(demo)
        send_hostile(demo)
        wait_for("%d access messages in rsyslog's file" % (THREADS * PER_THREAD + 1),
                 lambda: access_count(rs) >= THREADS * PER_THREAD + 1)
        check_access(rs)
        check_hostile(rs)
        check_app_transports(rs)

        # rsyslogd goes away: records logged meanwhile stay buffered and
        # arrive after it is back (the sink reconnects with backoff).
        rs.stop()
        for i in range(20):
            status, _, _ = demo.request("GET", "/hello?down=%d" % i)
            check(status == 200, "request while rsyslogd is down: status %d" % status)
        time.sleep(1.5)  # let the writer find the connection gone
        rs.start()
        wait_for("the records logged while rsyslogd was down",
                 lambda: sum(1 for r in parsed_records(rs) if r[4].get("url.original", "").startswith("/hello?down=")) >= 20,
                 timeout=60)
        down = [r[4]["url.original"] for r in parsed_records(rs) if r[4].get("url.original", "").startswith("/hello?down=")]
        check(sorted(set(down)) == sorted("/hello?down=%d" % i for i in range(20)), "records after reconnect: %s" % down)

        check(demo.stop() == 0, "talon-demo did not exit cleanly: %s" % demo.read_stderr())
        # A second run on the same trail, so that a cut after the first run's
        # shutdown seal leaves a trail that passes verify on its own.
        demo.start()
        load_small = [demo.request("GET", "/hello?second=%d" % i)[0] for i in range(5)]
        check(load_small == [200] * 5, "second run: %s" % load_small)
        check(demo.stop() == 0, "talon-demo did not exit cleanly: %s" % demo.read_stderr())
        wait_for("two sys_shutdown witness lines",
                 lambda: sum("record=sys_shutdown" in l for l in witness_lines(rs)) >= 2)
        check_raw_messages(rs)

        key = demo.path("var", "audit-verify.key")
        trail = demo.path("var", "audit")
        for line in witness_lines(rs):
            check(RFC5424.match(line) and " audit.witness " in line and "talon-audit-witness v1 trail=" in line,
                  "witness line %r" % line)
        records = [r for r in parsed_records(rs) if r[1] == "audit.witness"]
        check(all(r[0] == 4 * 8 + 6 for r in records), "witness PRIs %s, expected auth.info = 38" % [r[0] for r in records])
        check(all(r[4].get("audit.head") and r[4].get("audit.last_seq") for r in records),
              "witness structured data: %s" % [r[4] for r in records][:2])

        r = talon("audit", "verify", "--key", key, "--witness", rs.witness, trail)
        check(r.returncode == 0, "verify --witness on the intact trail: %s%s" % (r.stdout, r.stderr))
        check("chain heads match" in r.stdout, "verify output: %s" % r.stdout)

        cut = os.path.join(workdir, "cut")
        last = cut_after_first_shutdown_seal(trail, cut)
        r = talon("audit", "verify", "--key", key, cut)
        check(r.returncode == 0, "the cut trail should pass verify without a witness (that is the gap): %s" % r.stdout)
        r = talon("audit", "verify", "--key", key, "--witness", rs.witness, cut)
        check(r.returncode == 1, "verify --witness on the cut trail returned %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        check("truncated after the last seal" in r.stdout, "verify output: %s" % r.stdout)
        check("trail ends at seq %d" % last in r.stdout, "verify output: %s" % r.stdout)

        r = talon("audit", "verify", "--key", key, "--witness", rs.raw, trail)
        check(r.returncode == 0, "verify --witness with every message as the witness file: %s%s" % (r.stdout, r.stderr))

        check_config_errors(os.path.join(workdir, "demo"))
    finally:
        demo.cleanup() if demo.proc and demo.proc.poll() is None else None
        rs.stop()
        if os.environ.get("TALON_KEEP_TMP") is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print("ok: %d access records over TCP, hostile bytes, UDP and unix transports, reconnect, "
          "audit witness" % (THREADS * PER_THREAD))


if __name__ == "__main__":
    main()
