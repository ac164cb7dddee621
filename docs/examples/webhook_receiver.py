#!/usr/bin/env python3
"""Example receiver for the dashboard's incident webhooks (docs/dashboard.md, "Notifications").

Checks X-Immunizer-Signature (HMAC-SHA256 over "<timestamp>.<body>" with the shared secret, in
constant time), rejects timestamps more than 5 minutes off, drops repeated deliveries by
X-Immunizer-Delivery, and prints one line per incident event. Standard library only.

    IMMUNIZER_WEBHOOK_SECRET=s3cret python3 webhook_receiver.py --port 9999 [--fail-first 2]
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SKEW_S = 300
MAX_BODY = 1 << 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9999)
    ap.add_argument("--fail-first", type=int, default=0, help="answer 503 to the first N requests (to see retries)")
    args = ap.parse_args()
    secret = os.environ.get("IMMUNIZER_WEBHOOK_SECRET", "").encode()
    if not secret:
        sys.exit("set IMMUNIZER_WEBHOOK_SECRET to the dashboard's dashboard.notify_webhook_secret")
    seen = set()
    state = {"failures_left": args.fail_first}

    class Handler(BaseHTTPRequestHandler):
        def answer(self, code, text):
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(text.encode())

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            if length <= 0 or length > MAX_BODY:
                return self.answer(413, "bad length\n")
            body = self.rfile.read(length)
            ts = self.headers.get("X-Immunizer-Timestamp", "")
            sig = self.headers.get("X-Immunizer-Signature", "")
            expected = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(sig, expected):
                return self.answer(401, "bad signature\n")
            if not ts.isdigit() or abs(time.time() - int(ts)) > MAX_SKEW_S:
                return self.answer(401, "stale timestamp\n")
            if state["failures_left"] > 0:
                state["failures_left"] -= 1
                return self.answer(503, "try again\n")
            delivery = self.headers.get("X-Immunizer-Delivery", "")
            if delivery in seen:
                return self.answer(200, "duplicate\n")
            seen.add(delivery)
            event = json.loads(body)
            inc = event.get("incident", {})
            print(f"{event.get('type')}: incident {inc.get('id')} {inc.get('principal_key')} "
                  f"state={inc.get('state')} severity={inc.get('severity')} alarms={inc.get('alarms')}", flush=True)
            self.answer(200, "ok\n")

        def log_message(self, *a):
            pass

    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
