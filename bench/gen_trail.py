#!/usr/bin/python3
"""Write a synthetic talon audit trail of a given size, following the byte
format of docs/audit-format.md, for timing `talon audit verify` and `query`.

The records imitate an API under use: logins (about 1 in 200 fails), note
reads, creates and deletes, user administration, trail reads, with an epoch
sealed every --epoch-records records and a shutdown seal at the end. The
output is deterministic for a given --seed.

Usage: gen_trail.py --dir DIR --size-mb N [--epoch-records N] [--seed N]

It writes DIR/audit-00000001.jsonl and DIR/verify.key, then prints one line
of JSON on stdout: records, bytes, epochs and the count of each event type.
"""
import argparse
import hashlib
import hmac
import json
import os
import random
import sys
import time

EVOLVE_LABEL = b"talon-audit-evolve-v1"
ZERO_HASH = "0" * 64

USERS = [("alice", '["admin"]'), ("bob", '["user"]'), ("carol", '["user"]'),
         ("dave", '["auditor"]'), ("erin", '["user"]'), ("frank", '["user"]')]
AGENTS = ["curl/7.88.1", "python-requests/2.28.1",
          "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"]

# (event type, outcome, method, route, target type, weight)
EVENTS = [
    ("data_read", "success", "GET", "/notes/{id:int}", "note", 600),
    ("note_created", "success", "POST", "/notes", "note", 200),
    ("note_deleted", "success", "DELETE", "/notes/{id:int}", "note", 60),
    ("authn_login_success", "success", "POST", "/login", "user", 100),
    ("authn_login_fail", "failure", "POST", "/login", "user", 5),
    ("authz_fail", "failure", "DELETE", "/users/{user_id}", "user", 10),
    ("user_updated", "success", "PUT", "/users/{user_id}", "user", 10),
    ("audit_read", "success", "GET", "/audit", "audit_trail", 15),
]


def evolve(key):
    return hashlib.sha256(EVOLVE_LABEL + key).digest()


class TrailWriter:
    """Appends records, keeping the chain hash, the epoch key and the seal
    bookkeeping of the format."""

    def __init__(self, out, trail_id, key0, host):
        self.out = out
        self.trail_id = trail_id
        self.key = key0
        self.host = host
        self.seq = 0
        self.epoch = 0
        self.prev = ZERO_HASH
        self.epoch_first = 1
        self.bytes = 0
        self.clock = 1796400000.0  # 2026-12-04, advanced 200 µs per record

    def timestamp(self):
        self.clock += 0.0002
        whole = int(self.clock)
        micros = int((self.clock - whole) * 1e6)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%06dZ" % micros

    def write(self, body):
        """body: the record's keys from "type" to "data" inclusive, already
        serialized, without surrounding braces."""
        self.seq += 1
        prefix = ('{"v":1,"seq":%d,"epoch":%d,"time":"%s",%s,"host":"%s","trail":"%s","prev":"%s",'
                  % (self.seq, self.epoch, self.timestamp(), body, self.host,
                     self.trail_id, self.prev)).encode()
        digest = hashlib.sha256(prefix).digest()
        mac = hmac.digest(self.key, digest, "sha256").hex()
        line = prefix + b'"mac":"' + mac.encode() + b'"}\n'
        self.out.write(line)
        self.bytes += len(line)
        self.prev = digest.hex()

    def seal(self, cause):
        last = self.seq
        count = last - self.epoch_first + 1
        data = ('{"epoch":%d,"count":%d,"first_seq":%d,"last_seq":%d,"head":"%s","cause":"%s"}'
                % (self.epoch, count, self.epoch_first, last, self.prev, cause))
        self.write(system_body("audit_epoch_sealed", data))
        self.key = evolve(self.key)
        self.epoch += 1
        self.epoch_first = self.seq + 1


def system_body(event_type, data):
    return ('"type":"%s","outcome":"success","actor":{"id":"system","roles":[]},'
            '"source":{"ip":null,"user_agent":null},"request":null,"target":null,'
            '"reason":null,"data":%s' % (event_type, data))


def request_body(rng, n, event):
    event_type, outcome, method, route, target_type, _ = event
    user, roles = USERS[rng.randrange(len(USERS))]
    if target_type == "note":
        target_id = str(rng.randrange(1, 100000))
        path = "/notes" if route == "/notes" else "/notes/" + target_id
        data = '{"size":%d}' % rng.randrange(10, 2000)
    elif target_type == "user":
        target_id = USERS[rng.randrange(len(USERS))][0]
        path = "/login" if route == "/login" else "/users/" + target_id
        data = "{}"
    else:
        target_id = "var/audit"
        path = "/audit?type=authn_login_fail"
        data = '{"filters":{"type":"authn_login_fail"},"returned":%d}' % rng.randrange(0, 50)
    reason = "null"
    if event_type == "authn_login_fail":
        user, roles = "anonymous", "[]"
        reason = '"invalid password"'
    elif event_type == "authz_fail":
        reason = '"role admin required"'
    return ('"type":"%s","outcome":"%s","actor":{"id":"%s","roles":%s},'
            '"source":{"ip":"10.0.%d.%d","user_agent":"%s"},'
            '"request":{"id":"%032x","method":"%s","route":"%s","path":"%s"},'
            '"target":{"type":"%s","id":"%s"},"reason":%s,"data":%s'
            % (event_type, outcome, user, roles, rng.randrange(256), rng.randrange(1, 255),
               AGENTS[rng.randrange(len(AGENTS))], rng.getrandbits(128), method, route, path,
               target_type, target_id, reason, data))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="trail directory (created)")
    ap.add_argument("--size-mb", type=float, required=True, help="approximate size of the trail in MB")
    ap.add_argument("--epoch-records", type=int, default=100000, help="records per epoch")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    trail_id = "%032x" % rng.getrandbits(128)
    key0 = rng.getrandbits(256).to_bytes(32, "big")
    key_path = os.path.join(args.dir, "verify.key")
    with open(key_path, "w") as f:
        f.write("talon-audit-key v1 trail=%s key0=%s\n" % (trail_id, key0.hex()))
    os.chmod(key_path, 0o600)

    weights = [e[5] for e in EVENTS]
    limit = int(args.size_mb * 1e6)
    counts = {}
    path = os.path.join(args.dir, "audit-00000001.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb", buffering=1 << 20) as out:
        w = TrailWriter(out, trail_id, key0, "bench-1")
        w.write(system_body("sys_startup", '{"version":"bench"}'))
        n = 0
        while w.bytes < limit:
            # Draw a batch of event kinds at once: random.choices is the slow part.
            for event in rng.choices(EVENTS, weights, k=1000):
                w.write(request_body(rng, n, event))
                counts[event[0]] = counts.get(event[0], 0) + 1
                n += 1
                if w.seq - w.epoch_first + 1 >= args.epoch_records:
                    w.seal("interval")
        w.write(system_body("sys_shutdown", "{}"))
        w.seal("shutdown")
    print(json.dumps({"file": path, "key": key_path, "records": w.seq, "bytes": w.bytes,
                      "epochs": w.epoch, "types": counts}))


if __name__ == "__main__":
    sys.exit(main())
