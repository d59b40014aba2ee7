#!/usr/bin/python3
"""Independent reference implementation of the talon audit trail format.

Written from docs/audit-format.md alone, with the Python standard library,
so that the C writer and the C verifier can be checked against something
that shares no code with them. It has a writer (key generation, records,
seals, key evolution, rotation) and a verifier that names the first bad
record the same way `talon audit verify` does.

Command line:
  audit_ref.py keygen KEYFILE STATEFILE
  audit_ref.py write DIR --key-state STATE [--records N] [--rotate N] [--epoch N] [--open]
  audit_ref.py verify [--key KEYFILE | --no-key] [--open] [--partial] PATH...
The verifier prints one JSON object: verdict, file, line, seq, detail.
"""
import argparse
import calendar
import hashlib
import hmac
import json
import os
import re
import sys
import time

LABEL = b"talon-audit-evolve-v1"
ZERO_PREV = "0" * 64
SEAL_TYPE = "audit_epoch_sealed"
FILE_RE = re.compile(r"^audit-(\d{8})\.jsonl$")
TOP_KEYS = ["v", "seq", "epoch", "time", "type", "outcome", "actor", "source",
            "request", "target", "reason", "data", "host", "trail", "prev", "mac"]
LOOKAHEAD = 64          # records searched for a missing seq (reordered vs deleted)
MAX_LATER_KEYS = 100000  # later epochs tried for a "wrong epoch key" diagnosis


# ---- Keys -----------------------------------------------------------------

def evolve(key):
    return hashlib.sha256(LABEL + key).digest()


def key_for_epoch(key0, epoch):
    key = key0
    for _ in range(epoch):
        key = evolve(key)
    return key


def keygen(key_path, state_path):
    trail = os.urandom(16).hex()
    key0 = os.urandom(32)
    for path in (key_path, state_path):
        if os.path.exists(path):
            raise FileExistsError(path)
    with open(key_path, "w") as f:
        f.write("talon-audit-key v1 trail=%s key0=%s\n" % (trail, key0.hex()))
    write_state(state_path, trail, 0, key0)
    return trail, key0


def write_state(path, trail, epoch, key):
    line = "talon-audit-state v1 trail=%s epoch=%020d key=%s\n" % (trail, epoch, key.hex())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, line.encode(), 0)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def read_state(path):
    with open(path) as f:
        m = re.fullmatch(r"talon-audit-state v1 trail=([0-9a-f]{32}) epoch=(\d{20}) key=([0-9a-f]{64})\n",
                         f.read())
    if not m:
        raise ValueError("%s: not a talon key state file" % path)
    return m.group(1), int(m.group(2)), bytes.fromhex(m.group(3))


def read_key(path):
    with open(path) as f:
        m = re.fullmatch(r"talon-audit-key v1 trail=([0-9a-f]{32}) key0=([0-9a-f]{64})\n?", f.read())
    if not m:
        raise ValueError("%s: not a talon verification key file" % path)
    return m.group(1), bytes.fromhex(m.group(2))


# ---- Serialization (the spec's escapes, nothing else) ---------------------

def _valid_utf8_len(b, i):
    """Length of the valid UTF-8 sequence starting at b[i], or 0."""
    c = b[i]
    if c < 0x80:
        return 1
    if 0xC2 <= c <= 0xDF:
        n, lo, hi = 2, 0x80, 0xBF
    elif c == 0xE0:
        n, lo, hi = 3, 0xA0, 0xBF
    elif c == 0xED:
        n, lo, hi = 3, 0x80, 0x9F
    elif 0xE1 <= c <= 0xEF:
        n, lo, hi = 3, 0x80, 0xBF
    elif c == 0xF0:
        n, lo, hi = 4, 0x90, 0xBF
    elif 0xF1 <= c <= 0xF3:
        n, lo, hi = 4, 0x80, 0xBF
    elif c == 0xF4:
        n, lo, hi = 4, 0x80, 0x8F
    else:
        return 0
    if i + n > len(b) or not lo <= b[i + 1] <= hi:
        return 0
    for k in range(2, n):
        if not 0x80 <= b[i + k] <= 0xBF:
            return 0
    return n


def jstr(value):
    b = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    out = bytearray(b'"')
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x22:
            out += b'\\"'
        elif c == 0x5C:
            out += b"\\\\"
        elif c == 0x0A:
            out += b"\\n"
        elif c == 0x0D:
            out += b"\\r"
        elif c == 0x09:
            out += b"\\t"
        elif c < 0x20 or c == 0x7F:
            out += b"\\u%04x" % c
        elif c < 0x80:
            out.append(c)
        else:
            n = _valid_utf8_len(b, i)
            if n == 0:
                out += b"\\u%04x" % c
            else:
                out += b[i:i + n]
                i += n
                continue
        i += 1
    out += b'"'
    return bytes(out)


def jval(v):
    if v is None:
        return b"null"
    if v is True:
        return b"true"
    if v is False:
        return b"false"
    if isinstance(v, int):
        return b"%d" % v
    if isinstance(v, float):
        return b"%.17g" % v
    if isinstance(v, (str, bytes)):
        return jstr(v)
    if isinstance(v, (list, tuple)):
        return b"[" + b",".join(jval(x) for x in v) + b"]"
    if isinstance(v, dict):
        return b"{" + b",".join(jstr(k) + b":" + jval(x) for k, x in v.items()) + b"}"
    raise TypeError("cannot serialize %r" % (v,))


def fmt_time(t):
    sec = int(t)
    us = int(round((t - sec) * 1e6))
    if us >= 1000000:
        sec, us = sec + 1, us - 1000000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + ".%06dZ" % us


def record_prefix(seq, epoch, t, type_, outcome, actor, source, request, target,
                  reason, data, host, trail, prev):
    """The bytes P_i of a record: everything up to and including the comma after prev."""
    parts = [
        b'{"v":1,"seq":%d,"epoch":%d,"time":' % (seq, epoch), jstr(fmt_time(t) if not isinstance(t, str) else t),
        b',"type":', jstr(type_), b',"outcome":', jstr(outcome),
        b',"actor":{"id":', jstr(actor[0]), b',"roles":', jval(list(actor[1])), b"}",
        b',"source":{"ip":', jval(source[0]), b',"user_agent":', jval(source[1]), b"}",
        b',"request":',
        b"null" if request is None else
        b'{"id":' + jval(request[0]) + b',"method":' + jval(request[1]) +
        b',"route":' + jval(request[2]) + b',"path":' + jval(request[3]) + b"}",
        b',"target":',
        b"null" if target is None else b'{"type":' + jval(target[0]) + b',"id":' + jval(target[1]) + b"}",
        b',"reason":', jval(reason), b',"data":', jval(data or {}),
        b',"host":', jstr(host), b',"trail":', jstr(trail), b',"prev":', jstr(prev), b",",
    ]
    return b"".join(parts)


def finish_line(prefix, key):
    h = hashlib.sha256(prefix).digest()
    mac = hmac.new(key, h, hashlib.sha256).hexdigest()
    return prefix + b'"mac":"' + mac.encode() + b'"}\n', h


# ---- Writer ---------------------------------------------------------------

class Writer:
    """A trail writer that follows the spec step by step (not fast, not concurrent)."""

    def __init__(self, directory, state_path, host="ref-1", mode=0o600):
        self.dir = directory
        self.state_path = state_path
        self.host = host
        self.mode = mode
        self.trail, self.epoch, self.key = read_state(state_path)
        self.seq = 0
        self.prev = ZERO_PREV
        self.index = 1
        self.epoch_first = None     # first seq of the current epoch (None: no record yet)
        self.clock = time.time()
        os.makedirs(directory, exist_ok=True)
        self._open_file()

    def _path(self, index):
        return os.path.join(self.dir, "audit-%08d.jsonl" % index)

    def _open_file(self):
        fd = os.open(self._path(self.index), os.O_WRONLY | os.O_CREAT | os.O_APPEND, self.mode)
        self.f = os.fdopen(fd, "ab")

    def _now(self):
        self.clock += 0.000137
        return self.clock

    def _append(self, prefix):
        line, h = finish_line(prefix, self.key)
        self.f.write(line)
        self.prev = h.hex()
        return line

    def record(self, type_, outcome="success", actor=("anonymous", []), source=(None, None),
               request=None, target=None, reason=None, data=None, t=None):
        self.seq += 1
        if self.epoch_first is None:
            self.epoch_first = self.seq
        prefix = record_prefix(self.seq, self.epoch, t if t is not None else self._now(), type_,
                               outcome, actor, source, request, target, reason, data, self.host,
                               self.trail, self.prev)
        return self._append(prefix)

    def seal(self, cause="interval"):
        self.seq += 1
        if self.epoch_first is None:
            first, last, count, head = self.seq, self.seq, 0, self.prev
        else:
            first, last = self.epoch_first, self.seq - 1
            count, head = last - first + 1, self.prev
        data = {"epoch": self.epoch, "count": count, "first_seq": first, "last_seq": last,
                "head": head, "cause": cause}
        prefix = record_prefix(self.seq, self.epoch, self._now(), SEAL_TYPE, "success",
                               ("system", []), (None, None), None, None, None, data,
                               self.host, self.trail, self.prev)
        self._append(prefix)
        self.f.flush()
        os.fdatasync(self.f.fileno())
        self.key = evolve(self.key)
        self.epoch += 1
        write_state(self.state_path, self.trail, self.epoch, self.key)
        self.epoch_first = None

    def rotate(self):
        self.seal("rotation")
        self.f.close()
        self.index += 1
        self._open_file()

    def close(self, seal=True):
        if seal:
            self.record("sys_shutdown", actor=("system", []))
            self.seal("shutdown")
        self.f.close()


def demo_records(w, n, rotate_every=0, seal_every=0, seed=1):
    """Write n varied records (logins, failures, user admin) with seals and rotations."""
    users = ["alice", "bob", "carol", "dave", "erin"]
    ips = ["10.0.0.%d" % i for i in range(1, 9)] + ["2001:db8::1"]
    state = seed
    for i in range(n):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        user = users[state % len(users)]
        ip = ips[(state >> 8) % len(ips)]
        rid = "%032x" % ((state << 40) ^ i)
        kind = (state >> 4) % 10
        if kind < 3:
            w.record("authn_login_success", actor=(user, ["user"]), source=(ip, "curl/7.88.1"),
                     request=(rid, "POST", "/login", "/login"), target=("user", user),
                     data={"method": "password"})
        elif kind < 5:
            w.record("authn_login_fail", "failure", actor=("anonymous", []),
                     source=(ip, "python-requests/2.28"), request=(rid, "POST", "/login", "/login"),
                     target=("user", user), reason="invalid password",
                     data={"password": "[REDACTED]"})
        elif kind < 7:
            w.record("note_read", actor=(user, ["user"]), source=(ip, "Mozilla/5.0 \"quoted\" \\ ok"),
                     request=(rid, "GET", "/notes/{id}", "/notes/%d" % i), target=("note", str(i)),
                     data={})
        elif kind < 8:
            w.record("authz_fail", "failure", actor=(user, ["user"]), source=(ip, None),
                     request=(rid, "DELETE", "/users/{id}", "/users/bob"), target=("user", "bob"),
                     reason="role admin required", data={"required": ["admin"], "n": 3.25})
        else:
            w.record("user_created", actor=("alice", ["admin"]), source=(ip, "curl/7.88.1"),
                     request=(rid, "POST", "/users", "/users"), target=("user", "u%d" % i),
                     data={"role": "user", "note": "tab\there, nl\n, ctl\x01, é, \x7f"})
        if seal_every and (i + 1) % seal_every == 0:
            w.seal("interval")
        if rotate_every and (i + 1) % rotate_every == 0 and i + 1 < n:
            w.rotate()


# ---- Verifier -------------------------------------------------------------

INTACT, MODIFIED, DELETED, INSERTED, REORDERED = "intact", "modified", "deleted", "inserted", "reordered"
TRUNCATED, UNSEALED, WRONG_EPOCH_KEY, SPLICED = "truncated", "unsealed", "wrong epoch key", "spliced"
MALFORMED, BAD_SEAL, INCOMPLETE = "malformed", "bad seal", "incomplete"

HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
TIME_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.\d{6}Z$")


class Bad(Exception):
    def __init__(self, verdict, loc, seq, detail):
        super().__init__(detail)
        self.verdict, self.loc, self.seq, self.detail = verdict, loc, seq, detail


def _pairs(pairs):
    return pairs  # keep key order: a list of (key, value)


def _obj_keys(v, keys, what):
    if not isinstance(v, list) or [k for k, _ in v] != keys:
        raise ValueError("%s must be an object with keys %s" % (what, ",".join(keys)))
    return dict(v)


def _no_whitespace_outside_strings(raw):
    in_str = esc = False
    for i, c in enumerate(raw):
        if c < 0x20 or c == 0x7F:
            raise ValueError("raw control byte 0x%02x at byte %d" % (c, i))
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:
                esc = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c == 0x20:
            raise ValueError("whitespace outside a string at byte %d" % i)


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


def _str_or_null(d, what):
    for k, v in d.items():
        if v is not None and not isinstance(v, str):
            raise ValueError("%s.%s is neither a string nor null" % (what, k))


def parse_record(raw):
    """Parse a line (bytes, no final newline) strictly; return a dict or raise ValueError."""
    _no_whitespace_outside_strings(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError("invalid UTF-8 at byte %d" % e.start)
    try:
        top = json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ValueError("invalid JSON at byte %d: %s" % (e.pos, e.msg))
    except RecursionError:
        raise ValueError("JSON nested too deeply")
    if not isinstance(top, list) or [k for k, _ in top] != TOP_KEYS:
        raise ValueError("keys missing or out of order")
    r = dict(top)
    if r["v"] != 1 or raw[:6] != b'{"v":1':
        raise ValueError("not format version 1")
    for k in ("seq", "epoch"):
        if type(r[k]) is not int or not 0 <= r[k] < 1 << 64:
            raise ValueError("%s is not an integer from 0 to 2^64-1" % k)
    m = TIME_RE.match(r["time"]) if isinstance(r["time"], str) else None
    # Field ranges as RFC 3339 sections 5.6 and 5.7 give them (second 60: a
    # leap second; the day must exist in its month and year).
    year, month, day, hour, minute, second = (int(g) for g in m.groups()) if m else (0,) * 6
    if not m or not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour <= 23
                     and minute <= 59 and second <= 60):
        raise ValueError("time is not RFC 3339 UTC with 6 fractional digits")
    if r["outcome"] not in ("success", "failure"):
        raise ValueError("outcome is neither success nor failure")
    actor = _obj_keys(r["actor"], ["id", "roles"], "actor")
    if not isinstance(actor["id"], str) or not isinstance(actor["roles"], list) or \
            not all(isinstance(x, str) for x in actor["roles"]):
        raise ValueError("actor invalid")
    _str_or_null(_obj_keys(r["source"], ["ip", "user_agent"], "source"), "source")
    if r["request"] is not None:
        _str_or_null(_obj_keys(r["request"], ["id", "method", "route", "path"], "request"), "request")
    if r["target"] is not None:
        _str_or_null(_obj_keys(r["target"], ["type", "id"], "target"), "target")
    if r["reason"] is not None and not isinstance(r["reason"], str):
        raise ValueError("reason is neither a string nor null")
    if not isinstance(r["data"], list):
        raise ValueError("data is not an object")
    for k in ("type", "host", "trail", "prev", "mac"):
        if not isinstance(r[k], str):
            raise ValueError("%s is not a string" % k)
    if not HEX32.match(r["trail"]) or not HEX64.match(r["prev"]) or not HEX64.match(r["mac"]):
        raise ValueError("trail, prev or mac is not lowercase hex of the right length")
    tail = b'"mac":"' + r["mac"].encode() + b'"}'
    if not raw.endswith(tail):
        raise ValueError("does not end with the mac")
    r["_prefix"] = raw[:len(raw) - len(tail)]
    r["_h"] = hashlib.sha256(r["_prefix"]).digest()
    return r


def list_files(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            found = []
            for name in os.listdir(p):
                m = FILE_RE.match(name)
                if m:
                    found.append((int(m.group(1)), os.path.join(p, name)))
            files += [f for _, f in sorted(found)]
        else:
            files.append(p)
    return files


def file_index(path):
    m = FILE_RE.match(os.path.basename(path))
    return int(m.group(1)) if m else 0


class Verifier:
    def __init__(self, files, key=None, open_=False, partial=False):
        self.files = files
        self.trail_id, self.key0 = key if key else (None, None)
        self.open = open_
        self.partial = partial
        self.keys = {}
        self.stats = {"records": 0, "seals": 0}

    def key(self, epoch):
        if epoch not in self.keys:
            base = max([e for e in self.keys if e < epoch], default=None)
            k = self.key0 if base is None else self.keys[base]
            for _ in range(epoch - (0 if base is None else base)):
                k = evolve(k)
            self.keys[epoch] = k
        return self.keys[epoch]

    def mac_ok(self, r, epoch):
        want = hmac.new(self.key(epoch), r["_h"], hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, r["mac"])

    def run(self):
        try:
            self._run()
        except Bad as b:
            loc = b.loc
            return {"verdict": b.verdict, "file": os.path.basename(loc[0]) if loc else None,
                    "line": loc[1] if loc else 0, "seq": b.seq, "detail": b.detail}
        return {"verdict": INTACT, "file": None, "line": 0, "seq": 0,
                "detail": "%d records, %d seals" % (self.stats["records"], self.stats["seals"])}

    def _lines(self, path):
        with open(path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" when the file ends with \n
        return lines, torn

    def _max_epoch(self):
        """The epoch of the last parseable record of the last file: a bound for later keys."""
        lines, _ = self._lines(self.files[-1])
        for raw in reversed(lines):
            try:
                return parse_record(raw)["epoch"]
            except ValueError:
                continue
        return 0

    def _peek(self, lines, i):
        try:
            return parse_record(lines[i]) if i < len(lines) else None
        except ValueError:
            return None

    def _run(self):
        if not self.files:
            raise Bad(TRUNCATED, None, 0, "no trail files")
        last = None           # the last record that passed every check
        last_loc = None
        epoch_first = None    # first seq of the current epoch, None when unknown or empty
        epoch_first_loc = None
        start_known = True
        prev_index = None
        for fi, path in enumerate(self.files):
            is_last_file = fi == len(self.files) - 1
            idx = file_index(path)
            if prev_index is not None and idx and prev_index and idx != prev_index + 1:
                raise Bad(DELETED, (path, 1), last["seq"] + 1 if last else 1,
                          "file audit-%08d.jsonl is missing" % (prev_index + 1))
            prev_index = idx
            lines, torn = self._lines(path)
            records_here = 0
            for li, raw in enumerate(lines):
                loc = (path, li + 1)
                expect = last["seq"] + 1 if last else 1
                try:
                    r = parse_record(raw)
                except ValueError as e:
                    raise Bad(MALFORMED, loc, expect, "record does not parse: %s" % e)
                seq = r["seq"]
                if self.trail_id is None:
                    self.trail_id = r["trail"]
                if r["trail"] != self.trail_id:
                    raise Bad(SPLICED, loc, seq, "trail id %s, expected %s" % (r["trail"], self.trail_id))
                if last is None:
                    if seq != 1:
                        if not self.partial:
                            raise Bad(INCOMPLETE, loc, seq,
                                      "trail starts at seq %d, not 1 (older files removed?)" % seq)
                        start_known = False
                    elif r["prev"] != ZERO_PREV or r["epoch"] != 0:
                        raise Bad(MODIFIED, loc, seq, "seq 1 must have epoch 0 and a zero prev")
                    # Each epoch after 0 starts after a seal, so a genuine
                    # record's epoch is below its seq. This comes before the
                    # MAC check, whose key would cost epoch hashes to derive.
                    if r["epoch"] >= seq:
                        raise Bad(MODIFIED, loc, seq, "epoch %d is not below seq %d" % (r["epoch"], seq))
                    if self.key0 is not None and not self.mac_ok(r, r["epoch"]):
                        self._bad_mac(r, loc, r["epoch"])
                else:
                    self._check_link(last, last_loc, r, loc, lines, li)
                if r["type"] == SEAL_TYPE:
                    self._check_seal(r, loc, epoch_first, start_known)
                    self.stats["seals"] += 1
                    epoch_first = epoch_first_loc = None
                    start_known = True
                elif epoch_first is None:
                    epoch_first, epoch_first_loc = seq, loc
                self.stats["records"] += 1
                records_here += 1
                last, last_loc = r, loc
            if torn and not (is_last_file and self.open):
                n = len(lines) + 1
                raise Bad(TRUNCATED, (path, n), (last["seq"] + 1) if last else 1,
                          "line %d has no final newline (torn write or truncation)" % n)
            if not is_last_file:
                if records_here == 0:
                    raise Bad(TRUNCATED, (path, 1), (last["seq"] + 1) if last else 1, "file has no records")
                if last["type"] != SEAL_TYPE or dict(last["data"]).get("cause") not in ("rotation", "shutdown"):
                    raise Bad(TRUNCATED, last_loc, last["seq"],
                              "file does not end with a rotation or shutdown seal")
        if last is None:
            raise Bad(TRUNCATED, (self.files[-1], 1), 0, "no records")
        if not self.open:
            if last["type"] != SEAL_TYPE:
                n = last["seq"] - epoch_first + 1
                raise Bad(UNSEALED, epoch_first_loc, epoch_first,
                          "%d records after the last seal (seq %d..%d) may have been truncated; "
                          "use --open for a live trail" % (n, epoch_first, last["seq"]))
            if dict(last["data"]).get("cause") != "shutdown":
                raise Bad(TRUNCATED, last_loc, last["seq"],
                          "trail ends with a seal of cause %s, not shutdown: later records may have "
                          "been removed; use --open for a live trail" % dict(last["data"]).get("cause"))

    def _later_key_bound(self, epoch):
        """The last epoch after epoch whose key is worth trying: after a seal
        the server's key state is one epoch ahead of the last record."""
        return min(max(self._max_epoch() + 1, epoch + 1), epoch + MAX_LATER_KEYS)

    def _bad_mac(self, r, loc, epoch):
        for e in range(epoch + 1, self._later_key_bound(epoch) + 1):
            if self.mac_ok(r, e):
                raise Bad(WRONG_EPOCH_KEY, loc, r["seq"],
                          "MAC made with epoch %d's key, but the record is in epoch %d" % (e, epoch))
        raise Bad(MODIFIED, loc, r["seq"], "MAC does not match (epoch %d key)" % epoch)

    def _check_link(self, last, last_loc, r, loc, lines, li):
        seq, expect = r["seq"], last["seq"] + 1
        if seq > expect:
            for k in range(li + 1, min(li + 1 + LOOKAHEAD, len(lines))):
                n = self._peek(lines, k)
                if n is not None and n["seq"] == expect:
                    raise Bad(REORDERED, loc, seq, "seq %d comes before seq %d" % (seq, expect))
            raise Bad(DELETED, loc, seq, "seq %d..%d missing (%d record%s)"
                      % (expect, seq - 1, seq - expect, "" if seq - expect == 1 else "s"))
        if seq < expect:
            if seq == last["seq"]:
                raise Bad(INSERTED, loc, seq, "a second record with seq %d" % seq)
            n = self._peek(lines, li + 1)
            if n is not None and n["seq"] == expect and n["prev"] == last["_h"].hex():
                raise Bad(INSERTED, loc, seq, "a copy of seq %d between seq %d and %d" % (seq, last["seq"], expect))
            raise Bad(REORDERED, loc, seq, "seq %d after seq %d" % (seq, last["seq"]))
        want_epoch = last["epoch"] + 1 if last["type"] == SEAL_TYPE else last["epoch"]
        prev_ok = r["prev"] == last["_h"].hex()
        epoch_ok = r["epoch"] == want_epoch
        mac_ok = True if self.key0 is None else (epoch_ok and self.mac_ok(r, want_epoch))
        if prev_ok and epoch_ok and mac_ok:
            return
        n = self._peek(lines, li + 1)
        if n is not None and n["seq"] == seq and n["prev"] == last["_h"].hex():
            raise Bad(INSERTED, loc, seq, "seq %d is taken by the next record, which continues the chain" % seq)
        if not epoch_ok:
            if self.key0 is not None and want_epoch < r["epoch"] <= self._later_key_bound(want_epoch) \
                    and self.mac_ok(r, r["epoch"]):
                raise Bad(WRONG_EPOCH_KEY, loc, seq, "record claims epoch %d and is MACed with its key, "
                          "but its place in the chain is epoch %d" % (r["epoch"], want_epoch))
            raise Bad(MODIFIED, loc, seq, "epoch %d, expected %d" % (r["epoch"], want_epoch))
        if not prev_ok:
            if loc[1] == 1:
                raise Bad(SPLICED, loc, seq, "first record of the file does not continue the chain of the previous file")
            if self.key0 is None:
                raise Bad(MODIFIED, last_loc, last["seq"],
                          "its hash does not match the prev of the next record (seq %d)" % seq)
            if self.mac_ok(r, want_epoch):
                raise Bad(MODIFIED, loc, seq, "prev does not match the hash of seq %d" % last["seq"])
        self._bad_mac(r, loc, want_epoch)

    def _check_seal(self, r, loc, epoch_first, start_known):
        try:
            d = dict(r["data"])
            keys = [k for k, _ in r["data"]]
        except (TypeError, ValueError):
            raise Bad(BAD_SEAL, loc, r["seq"], "seal data is not an object")
        if keys != ["epoch", "count", "first_seq", "last_seq", "head", "cause"]:
            raise Bad(BAD_SEAL, loc, r["seq"], "seal data keys missing or out of order")
        if d["epoch"] != r["epoch"]:
            raise Bad(BAD_SEAL, loc, r["seq"], "seal of epoch %r in epoch %d" % (d["epoch"], r["epoch"]))
        if d["cause"] not in ("interval", "rotation", "shutdown"):
            raise Bad(BAD_SEAL, loc, r["seq"], "unknown seal cause %r" % (d["cause"],))
        if epoch_first is None:
            want = (0, r["seq"], r["seq"], r["prev"])
        else:
            want = (r["seq"] - epoch_first, epoch_first, r["seq"] - 1, r["prev"])
        got = (d["count"], d["first_seq"], d["last_seq"], d["head"])
        if not start_known:
            want, got = want[2:], got[2:]
        if got != want:
            raise Bad(BAD_SEAL, loc, r["seq"], "seal says count/first/last/head %r, records give %r" % (got, want))


def verify(paths, key_path=None, open_=False, partial=False):
    key = read_key(key_path) if key_path else None
    return Verifier(list_files(paths), key, open_, partial).run()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("key")
    k.add_argument("state")
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("--key-state", required=True)
    w.add_argument("--records", type=int, default=100)
    w.add_argument("--rotate", type=int, default=0, help="rotate after this many records")
    w.add_argument("--epoch", type=int, default=0, help="seal an epoch after this many records")
    w.add_argument("--open", action="store_true", help="leave the trail live (no shutdown seal)")
    w.add_argument("--host", default="ref-1")
    v = sub.add_parser("verify")
    v.add_argument("paths", nargs="+")
    v.add_argument("--key")
    v.add_argument("--no-key", action="store_true")
    v.add_argument("--open", action="store_true")
    v.add_argument("--partial", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd == "keygen":
        print(keygen(a.key, a.state)[0])
        return 0
    if a.cmd == "write":
        wr = Writer(a.dir, a.key_state, host=a.host)
        wr.record("sys_startup", actor=("system", []))
        demo_records(wr, a.records, a.rotate, a.epoch)
        wr.close(seal=not a.open)
        return 0
    if not a.key and not a.no_key:
        ap.error("verify needs --key FILE or --no-key")
    res = verify(a.paths, None if a.no_key else a.key, a.open, a.partial)
    print(json.dumps(res))
    return 0 if res["verdict"] == INTACT else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
