"""Unit tests of the Python SDK against a tiny fake server on a Unix socket."""

import base64
import json
import os
import shutil
import socket
import socketserver
import sys
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import hearth  # noqa: E402


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes = {}  # (method, path) -> (status, body | callable)
    requests = []

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass

    def _serve(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        path, _, query = self.path.partition("?")
        type(self).requests.append((self.command, path, query, body, dict(self.headers)))
        status, payload = self.routes.get((self.command, path), (404, {"error": {"kind": "not_found", "message": "no route %s" % path}}))
        if callable(payload):
            payload(self)
            return
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_DELETE = _serve


def _stream(handler):
    lines = [
        {"stream": "stdout", "data": base64.b64encode(b"one\n").decode()},
        {"stream": "stderr", "data": base64.b64encode(b"\xff\x00").decode()},
        {"result": {"status": "finished", "exit_code": 2, "reason": "exited", "stdout": "one\n"}},
    ]
    raw = b"".join(json.dumps(l).encode() + b"\n" for l in lines)
    handler.send_response(200)
    handler.send_header("Content-Type", "application/x-ndjson")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


WS = {"id": "w1", "name": "demo", "image": "debian-12", "backend": "qemu", "state": "running",
      "created_at": "2024-01-01T00:00:00Z", "cpus": 1, "memory_mib": 1024, "disk_size_bytes": 8, "future_field": 1}


class FakeServerTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hearth-py-")
        self.sock = os.path.join(self.dir, "s.sock")
        _Handler.routes = {
            ("GET", "/v1/health"): (200, {"ok": True, "version": "test"}),
            ("POST", "/v1/workspaces"): (200, WS),
            ("GET", "/v1/workspaces"): (200, {"workspaces": [WS]}),
            ("GET", "/v1/workspaces/demo"): (200, WS),
            ("POST", "/v1/workspaces/demo/exec"): (200, {"status": "finished", "exit_code": 0, "reason": "exited",
                                                        "stdout": base64.b64encode(b"\xff\xfe").decode(), "stdout_encoding": "base64",
                                                        "stderr": "warn\n", "stdout_bytes": 2}),
            ("POST", "/v1/workspaces/s/exec"): (200, _stream),
            ("GET", "/v1/workspaces/demo/diff"): (200, {"files": [{"path": "a.txt", "status": "added", "type": "file", "binary": False,
                                                                   "insertions": 1, "deletions": 0, "new_size": 2}],
                                                        "summary": {"added": 1, "files": 1}}),
            ("GET", "/v1/workspaces/nope"): (404, {"error": {"kind": "not_found", "message": 'workspace "nope": not found'}}),
            ("GET", "/v1/workspaces/conflict"): (409, {"error": {"kind": "conflict", "message": "busy"}}),
            ("GET", "/v1/workspaces/slow"): (504, {"error": {"kind": "timeout", "message": "timed out"}}),
            ("GET", "/v1/workspaces/ni"): (501, {"error": {"kind": "not_implemented", "message": "no"}}),
            ("GET", "/v1/workspaces/odd"): (500, {"error": {"kind": "brand_new_kind", "message": "?"}}),
            ("GET", "/v1/workspaces/html"): (502, "<html>"),
            ("GET", "/v1/workspaces/auth"): (401, {"error": {"kind": "invalid_argument", "message": "missing or wrong bearer token"}}),
        }
        _Handler.requests = []
        self.srv = _UnixHTTPServer(self.sock, _Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.c = hearth.Client(socket=self.sock, autostart=False)

    def tearDown(self):
        self.srv.shutdown()
        self.srv.server_close()
        shutil.rmtree(self.dir)

    def test_errors(self):
        cases = [
            ("nope", hearth.NotFoundError, "not_found", 404),
            ("conflict", hearth.ConflictError, "conflict", 409),
            ("slow", hearth.HearthTimeoutError, "timeout", 504),
            ("ni", hearth.NotImplementedByServerError, "not_implemented", 501),
            ("odd", hearth.HearthError, "brand_new_kind", 500),
            ("html", hearth.HearthError, "internal", 502),
            ("auth", hearth.AuthenticationError, "invalid_argument", 401),
        ]
        for ref, cls, kind, status in cases:
            with self.subTest(ref=ref):
                with self.assertRaises(cls) as cm:
                    self.c.workspace(ref).show()
                self.assertEqual(cm.exception.kind, kind)
                self.assertEqual(cm.exception.status, status)
                self.assertIsInstance(cm.exception, hearth.HearthError)
        self.assertTrue(issubclass(hearth.HearthTimeoutError, TimeoutError))
        self.assertTrue(issubclass(hearth.AuthenticationError, hearth.InvalidArgumentError))
        with self.assertRaises(hearth.NotFoundError) as cm:
            self.c.workspace("nope").show()
        self.assertEqual(str(cm.exception), 'workspace "nope": not found')

    def test_decoding(self):
        ws = self.c.create_workspace(name="demo", seed="rel/dir", cpus=1)
        self.assertIsInstance(ws.info, hearth.WorkspaceInfo)
        self.assertEqual((ws.ref, ws.info.name, ws.info.state), ("w1", "demo", "running"))
        _, path, _, body, _ = _Handler.requests[-1]
        self.assertEqual(body, {"name": "demo", "seed": os.path.abspath("rel/dir"), "cpus": 1})
        r = self.c.workspace("demo").exec(["echo", "hi"], env={"A": "1"}, timeout_ms=500)
        self.assertEqual(_Handler.requests[-1][3], {"argv": ["echo", "hi"], "env": ["A=1"], "timeout_ms": 500})
        self.assertEqual((r.exit_code, r.stdout_raw, r.stderr, r.ok), (0, b"\xff\xfe", "warn\n", True))
        self.c.workspace("demo").exec("echo hi | wc -c")
        self.assertEqual(_Handler.requests[-1][3], {"command": "echo hi | wc -c"})
        d = self.c.workspace("demo").diff(paths=["a", "b"], no_patch=True)
        self.assertEqual(_Handler.requests[-1][2], "paths=a&paths=b&no_patch=true")
        self.assertEqual([(f.status, f.path, f.new_size) for f in d.files], [("added", "a.txt", 2)])
        self.assertEqual(d.summary.added, 1)
        [w] = self.c.list_workspaces()
        self.assertEqual(w.info.id, "w1")

    def test_stream(self):
        got = []
        r = self.c.workspace("s").exec(["x"], on_output=lambda s, b: got.append((s, b)))
        self.assertEqual(got, [("stdout", b"one\n"), ("stderr", b"\xff\x00")])
        self.assertEqual(r.exit_code, 2)
        self.assertEqual(_Handler.requests[-1][4].get("Accept"), "application/x-ndjson")

    def test_unavailable(self):
        with self.assertRaises(hearth.UnavailableError):
            hearth.Client(socket=os.path.join(self.dir, "none.sock"), autostart=False)
        with self.assertRaises(hearth.UnavailableError):
            hearth.Client(socket=os.path.join(self.dir, "none2.sock"), hearth_bin="/nonexistent/hearth")

    def test_default_socket(self):
        env = dict(os.environ)
        try:
            os.environ["XDG_RUNTIME_DIR"] = "/run/user/7"
            self.assertEqual(hearth.default_socket(), "/run/user/7/hearth/hearth.sock")
            del os.environ["XDG_RUNTIME_DIR"]
            os.environ["HEARTH_HOME"] = "/srv/h"
            self.assertEqual(hearth.default_socket(), "/srv/h/hearth.sock")
        finally:
            os.environ.clear()
            os.environ.update(env)


if __name__ == "__main__":
    unittest.main()
