-- wrk script: POST /notes with a small JSON body, the audited write path of
-- talon-demo. Usage (see docs/audit.md, "Throughput"):
--   wrk -t2 -c64 -d5s -s bench/audit_post.lua http://127.0.0.1:8080/notes
wrk.method = "POST"
wrk.body = '{"text":"benchmark note"}'
wrk.headers["Content-Type"] = "application/json"
