#!/usr/bin/python3
"""A stand-in for MSRC's CVRF API v3.0 on loopback, for testing and benchmarking `kbgap catalog
sync` without the internet. It serves the CVRF XML documents of a directory at the API's paths:

  GET /updates          {"value": [{"ID", "Alias", "DocumentTitle", "InitialReleaseDate",
                          "CurrentReleaseDate", "CvrfUrl"}, ...]}, built from the documents'
                          own DocumentTracking each time it is asked (so a document changed on
                          disk is a revised month)
  GET /cvrf/<ID>        the document, as application/xml

and faults on request, set with POST /_control (JSON; each key optional):
  {"status": {"<ID>": [code, times, retry_after]}}   answer <ID> with `code` `times` times
                                                     (-1: always), with Retry-After if given
  {"truncate": ["<ID>", ...]}   send half the document under the full Content-Length, then close
  {"delay": {"<ID>": seconds}}  wait before answering
  {"reset": true}               no faults
GET /_requests gives how many times each path was asked.

Usage: cvrf_server.py DIR [--port N] [--port-file F] [--tls CERT KEY]
"""
import argparse
import json
import os
import re
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The tags with or without the cvrf: prefix (2023-Dec uses a default namespace).
HEADER = re.compile(
    rb"<(?:cvrf:)?DocumentTitle>(?P<title>[^<]*)</(?:cvrf:)?DocumentTitle>.*?"
    rb"<(?:cvrf:)?ID>(?P<id>[^<]*)</(?:cvrf:)?ID>.*?"
    rb"<(?:cvrf:)?InitialReleaseDate>(?P<initial>[^<]*)</(?:cvrf:)?InitialReleaseDate>\s*"
    rb"<(?:cvrf:)?CurrentReleaseDate>(?P<current>[^<]*)</(?:cvrf:)?CurrentReleaseDate>", re.S)


def utc(text):
    return text if text.endswith("Z") else text + "Z"


class State:
    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.Lock()
        self.status = {}
        self.truncate = set()
        self.delay = {}
        self.requests = {}

    def documents(self):
        """{id: (path, title, initial, current)} of the directory's documents."""
        out = {}
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".xml"):
                continue
            path = os.path.join(self.directory, name)
            with open(path, "rb") as f:
                head = f.read(16384)
            m = HEADER.search(head)
            if m:
                out[m["id"].decode()] = (path, m["title"].decode(), utc(m["initial"].decode()),
                                         utc(m["current"].decode()))
        return out


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, code, body, content_type="application/json", headers=()):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with state.lock:
                if body.get("reset"):
                    state.status, state.truncate, state.delay = {}, set(), {}
                state.status.update(body.get("status", {}))
                state.truncate.update(body.get("truncate", []))
                state.delay.update(body.get("delay", {}))
            self.send(200, b"{}")

        def do_GET(self):
            with state.lock:
                state.requests[self.path] = state.requests.get(self.path, 0) + 1
            if self.path == "/_requests":
                with state.lock:
                    self.send(200, json.dumps(state.requests).encode())
                return
            docs = state.documents()
            host = self.headers.get("Host", "127.0.0.1")
            scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
            if self.path == "/updates":
                value = [{"ID": i, "Alias": i, "DocumentTitle": t, "Severity": None,
                          "InitialReleaseDate": ini, "CurrentReleaseDate": cur,
                          "CvrfUrl": f"{scheme}://{host}/cvrf/{i}"}
                         for i, (_, t, ini, cur) in docs.items()]
                self.send(200, json.dumps({"@odata.context": "$metadata#Updates",
                                           "value": value}).encode())
                return
            m = re.fullmatch(r"/cvrf/([A-Za-z0-9-]+)", self.path)
            if not m or m[1] not in docs:
                self.send(404, b'{"error": "not found"}')
                return
            month = m[1]
            with state.lock:
                delay = state.delay.get(month, 0)
                fault = state.status.get(month)
                if fault and fault[1] != 0:
                    fault[1] -= 1 if fault[1] > 0 else 0
                else:
                    fault = None
                truncate = month in state.truncate
            if delay:
                time.sleep(delay)
            if fault:
                headers = [("Retry-After", str(fault[2]))] if len(fault) > 2 else []
                self.send(fault[0], b'{"error": "fault"}', headers=headers)
                return
            with open(docs[month][0], "rb") as f:
                body = f.read()
            if truncate:
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.send(200, body, "application/xml")

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (a test's timeout) is not the server's error.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), make_handler(State(args.directory)))
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*args.tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
