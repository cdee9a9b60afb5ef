"""End to end: start `hearth serve` and run the README workflow on a real VM.

Needs HEARTH_BIN (the hearth binary) and HEARTH_HOME (a state directory with
the debian-12 image); `go test ./internal/httpapi` sets both.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import hearth  # noqa: E402


@unittest.skipUnless(os.environ.get("HEARTH_BIN") and os.environ.get("HEARTH_HOME"), "needs HEARTH_BIN and HEARTH_HOME (run via go test ./internal/httpapi)")
class WorkflowTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hearth-e2e-")
        self.sock = os.path.join(self.dir, "hearth.sock")
        self.log = open(os.path.join(self.dir, "serve.log"), "wb")
        self.proc = subprocess.Popen([os.environ["HEARTH_BIN"], "serve", "--socket", self.sock, "--allow-path", self.dir],
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.c = hearth.Client(socket=self.sock, autostart=False)
                break
            except hearth.UnavailableError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def tearDown(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_readme_workflow(self):
        project = os.path.join(self.dir, "project")
        os.makedirs(project)
        with open(os.path.join(project, "Makefile"), "w") as f:
            f.write("test:\n\tmkdir -p dist && echo built > dist/out.txt && echo tests passed\n")
        with open(os.path.join(project, "keep.txt"), "w") as f:
            f.write("v1\n")
        name = "pydemo-%d" % os.getpid()
        ws = self.c.create_workspace(name=name, seed=project)
        try:
            self.assertEqual(ws.info.name, name)
            self.assertEqual(ws.info.state, "running")
            r = ws.exec(["sh", "-c", "cd /workspace && mkdir -p dist && echo built > dist/out.txt && echo tests passed"])
            self.assertEqual((r.exit_code, r.stdout, r.stderr), (0, "tests passed\n", ""))
            r = ws.exec("echo err >&2; printf '\\377'; exit 3")
            self.assertEqual((r.exit_code, r.stderr, r.stdout_raw), (3, "err\n", b"\xff"))
            chunks = []
            r = ws.exec(["sh", "-c", "echo a; echo b >&2"], on_output=lambda s, b: chunks.append((s, b)))
            self.assertEqual(r.exit_code, 0)
            self.assertEqual(sorted(chunks), [("stderr", b"b\n"), ("stdout", b"a\n")])
            with open(os.path.join(project, "keep.txt"), "w") as f:
                f.write("v2\n")
            s = ws.sync_push(project)
            self.assertGreaterEqual(s.sent, 1)
            got = {(f.status, f.path) for f in ws.diff().files}
            self.assertIn(("modified", "keep.txt"), got)
            self.assertIn(("added", "dist/out.txt"), got)
            dist = os.path.join(self.dir, "dist")
            e = ws.export("/workspace/dist", dist)
            self.assertEqual(e.files, 1)
            with open(os.path.join(dist, "out.txt")) as f:
                self.assertEqual(f.read(), "built\n")
            self.assertTrue(any(w.info.name == name for w in self.c.list_workspaces()))
            self.assertGreaterEqual(len(ws.logs()), 3)
        finally:
            self.c.workspace(name).delete(force=True)
        with self.assertRaises(hearth.NotFoundError):
            self.c.workspace(name).show()
        with self.assertRaises(hearth.NotFoundError):
            self.c.workspace("no-such-workspace").delete(force=True)


if __name__ == "__main__":
    unittest.main()
