"""The Python peer: Falcon 3 with the classic logging recipe, run by gunicorn.

The recipe is the one Falcon users copy: logging.basicConfig() to a file at
INFO, and a middleware whose process_resource logs "Request: <method>
<relative uri>" and whose process_response logs "Response: <status>".
GET /hello returns the bytes in $BENCH_HELLO_BODY with the content type in
$BENCH_HELLO_TYPE, so the body is byte for byte the one talon-demo sends.
"""
import logging
import os

import falcon

logging.basicConfig(filename=os.environ["BENCH_APP_LOG"], level=logging.INFO)
logger = logging.getLogger("app")

HELLO_BODY = os.environ["BENCH_HELLO_BODY"].encode("utf-8")
HELLO_TYPE = os.environ.get("BENCH_HELLO_TYPE", "application/json")


class LoggingMiddleware:
    def process_resource(self, req, resp, resource, params):
        logger.info("Request: %s %s", req.method, req.relative_uri)

    def process_response(self, req, resp, resource, req_succeeded):
        logger.info("Response: %s", resp.status)


class HelloResource:
    def on_get(self, req, resp):
        resp.data = HELLO_BODY
        resp.content_type = HELLO_TYPE


app = falcon.App(middleware=[LoggingMiddleware()])
app.add_route("/hello", HelloResource())
