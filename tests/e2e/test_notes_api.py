#!/usr/bin/python3
"""Notes CRUD against the real talon-demo, including concurrent writers."""
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from talon_e2e import Demo, check  # noqa: E402

JSON = {"Content-Type": "application/json"}


def crud(demo):
    status, _, body = demo.request("GET", "/notes")
    check(status == 200 and json.loads(body) == {"notes": []}, "empty list: %d %r" % (status, body))

    status, headers, body = demo.request("POST", "/notes", json.dumps({"text": "first"}), JSON)
    check(status == 201, "create: %d %r" % (status, body))
    note = json.loads(body)
    check(note["text"] == "first" and isinstance(note["id"], int), "created note: %r" % note)
    check(headers.get("location") == "/notes/%d" % note["id"],
          "Location: %r" % headers.get("location"))
    nid = note["id"]

    status, _, body = demo.request("GET", "/notes/%d" % nid)
    check(status == 200 and json.loads(body)["text"] == "first", "read: %d %r" % (status, body))

    text = "second \u00e9 \"quoted\" \\ line\nbreak"
    status, _, body = demo.request("PUT", "/notes/%d" % nid, json.dumps({"text": text}), JSON)
    check(status == 200 and json.loads(body)["text"] == text, "update: %d %r" % (status, body))
    status, _, body = demo.request("GET", "/notes/%d" % nid)
    check(json.loads(body)["text"] == text, "read after update: %r" % body)

    status, _, body = demo.request("GET", "/notes")
    check([n["id"] for n in json.loads(body)["notes"]] == [nid], "list: %r" % body)

    status, _, body = demo.request("DELETE", "/notes/%d" % nid)
    check(status == 204 and body == b"", "delete: %d %r" % (status, body))
    status, _, body = demo.request("GET", "/notes/%d" % nid)
    check(status == 404, "read after delete: %d" % status)
    check("no note with id %d" % nid in json.loads(body)["description"], "404 body: %r" % body)
    status, _, _ = demo.request("DELETE", "/notes/%d" % nid)
    check(status == 404, "second delete: %d" % status)
    status, _, _ = demo.request("PUT", "/notes/999999", json.dumps({"text": "x"}), JSON)
    check(status == 404, "update of a missing note: %d" % status)

    status, _, _ = demo.request("POST", "/notes", json.dumps({"text": 5}), JSON)
    check(status == 400, "text must be a string: %d" % status)
    status, _, _ = demo.request("POST", "/notes", json.dumps(["text"]), JSON)
    check(status == 400, "body must be an object: %d" % status)


def concurrent_creates(demo):
    errors = []
    ids = []
    lock = threading.Lock()

    def writer(n):
        c = demo.conn()
        try:
            for i in range(25):
                c.request("POST", "/notes", json.dumps({"text": "w%d-%d" % (n, i)}), JSON)
                r = c.getresponse()
                body = r.read()
                if r.status != 201:
                    errors.append("POST status %d: %r" % (r.status, body))
                    return
                with lock:
                    ids.append(json.loads(body)["id"])
        except Exception as e:  # reported below
            errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "concurrent writers failed: %s" % errors[:3])
    check(len(set(ids)) == 200, "expected 200 distinct ids, got %d" % len(set(ids)))
    status, _, body = demo.request("GET", "/notes")
    listed = [n["id"] for n in json.loads(body)["notes"]]
    check(sorted(ids) == listed, "the list does not contain exactly the created notes")


def main():
    with Demo() as demo:
        crud(demo)
        concurrent_creates(demo)
        code = demo.stop()
        check(code == 0, "exit code %d" % code)
    print("ok")


if __name__ == "__main__":
    main()
