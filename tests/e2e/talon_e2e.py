"""Shared helpers for end-to-end tests: start the real talon-demo on a free
loopback port in a temporary directory, talk to it, stop it.

Tests run with Debian's /usr/bin/python3 and the standard library only.
ctest sets TALON_BUILD (the build directory) and TALON_SOURCE.
"""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("TALON_BUILD") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
SOURCE = os.environ.get("TALON_SOURCE") or os.path.join(os.path.dirname(__file__), "..", "..")
DEMO = os.path.join(BUILD, "talon-demo")
CLI = os.path.join(BUILD, "talon")


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def read_response(sock):
    """Read one HTTP response framed by Content-Length from sock. Returns the
    bytes read, fewer when the server closes or resets the connection first."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            lengths = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                       if line.lower().startswith(b"content-length:")]
            if lengths and len(body) >= lengths[0]:
                return data


def split_response(reply):
    """Split raw response bytes into (status, headers with lowercased names,
    body); status is 0 when reply has no HTTP/1.1 status line."""
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split() if lines and lines[0] else []
    status = int(parts[1]) if len(parts) > 1 and parts[0] == b"HTTP/1.1" else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    return status, headers, body


class Demo:
    """A talon-demo process with its own working directory (so var/ is private).

    The demo binds port 0 and writes the bound port to --port-file."""

    def __init__(self, args=(), config=None, workdir=None, env=None, binary=None):
        self.binary = binary or DEMO
        self.workdir = workdir or tempfile.mkdtemp(prefix="talon-e2e-")
        self.args = list(args)
        self.config = config
        self.env = env
        self.proc = None
        self.port = None

    def start(self, timeout=20):
        port_file = os.path.join(self.workdir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        cmd = [self.binary, "--listen", "127.0.0.1:0", "--port-file", port_file]
        if self.config is not None:
            path = os.path.join(self.workdir, "talon.ini")
            with open(path, "w") as f:
                f.write(self.config)
            cmd += ["--config", path]
        cmd += self.args
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.stderr = open(os.path.join(self.workdir, "stderr.txt"), "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=self.stderr,
                                     stderr=self.stderr, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                fail("talon-demo exited with %d before listening; stderr:\n%s"
                     % (self.proc.returncode, self.read_stderr()))
            try:
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return self
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        fail("talon-demo did not write its port within %ds" % timeout)

    def read_stderr(self):
        try:
            with open(os.path.join(self.workdir, "stderr.txt"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, target, body=None, headers=None, timeout=10):
        """One request on a new connection; returns (status, headers dict lowercased, body bytes)."""
        c = self.conn(timeout)
        try:
            c.request(method, target, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def raw(self, data, timeout=5, read_all=True):
        """Send raw bytes on a fresh socket and return what comes back."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(data)
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                if not b:
                    break
                chunks.append(b)
                if not read_all:
                    break
            return b"".join(chunks)
        finally:
            s.close()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop the demo and return its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("talon-demo did not exit within %ds of signal %d" % (timeout, sig))

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if os.environ.get("TALON_KEEP_TMP") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False
