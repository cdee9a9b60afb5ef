"""The Python half of `make dist-check`: the hearth SDK installed from the wheel
into a fresh venv, inside the fresh Debian root where the .deb was installed,
driving `hearth serve` (the installed /usr/bin/hearth) over its Unix socket.
Each step prints its time; any failure raises, so the exit is non-zero."""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import hearth

T0 = time.monotonic()


def step(name):
    global T0
    now = time.monotonic()
    print("  py  %-30s %6.1f s" % (name, now - T0), file=sys.stderr)
    T0 = now


def expect(what, needle, text):
    if needle not in text:
        raise SystemExit("dist-smoke.py: FAIL: %s: want %r in %r" % (what, needle, text))


def main():
    assert hearth.__file__.startswith(sys.prefix), "hearth imported from %s, not the venv" % hearth.__file__
    home = os.environ["HEARTH_HOME"]
    sock = os.path.join(home, "smoke.sock")
    work = tempfile.mkdtemp(prefix="smoke-py-")
    log = open(os.path.join(work, "serve.log"), "w")
    serve = subprocess.Popen(["hearth", "serve", "--socket", sock, "--allow-path", work],
                             stdout=log, stderr=subprocess.PIPE, text=True)
    try:
        # Ready when it logs "listening" (its socket is bound by then); the
        # rest of its log goes to serve.log.
        for line in serve.stderr:
            log.write(line)
            if "listening" in line:
                break
        else:
            raise SystemExit("dist-smoke.py: FAIL: hearth serve exited (%s): see %s" % (serve.wait(), log.name))
        threading.Thread(target=lambda: [log.write(line) for line in serve.stderr], daemon=True).start()
        run(sock, work)
    finally:
        serve.terminate()
        serve.wait(timeout=60)


def run(sock, work):
    c = hearth.Client(socket=sock, autostart=False)
    step("hearth serve answers")

    project = os.path.join(work, "project")
    os.makedirs(project)
    with open(os.path.join(project, "hello.txt"), "w") as f:
        f.write("hello\n")
    ws = c.create_workspace(name="smoke-py", seed=project)
    step("create_workspace(seed=)")
    try:
        expect("exec", "hello", ws.exec(["cat", "/workspace/hello.txt"]).stdout)
        step("exec")

        with open(os.path.join(project, "hello.txt"), "a") as f:
            f.write("more\n")
        with open(os.path.join(project, "new.txt"), "w") as f:
            f.write("new\n")
        ws.sync_push(project)
        expect("sync_push", "more", ws.exec(["cat", "/workspace/hello.txt"]).stdout)
        step("sync_push")
        expect("diff", "new.txt", " ".join(f.path for f in ws.diff().files))
        step("diff")

        ws.exec("mkdir -p /workspace/out && echo result > /workspace/out/r.txt")
        ws.export("/workspace/out", os.path.join(work, "exported"))
        expect("export", "result", open(os.path.join(work, "exported", "r.txt")).read())
        step("export")

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        r = ws.service_start("web", ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"], cwd="/workspace",
                             ready=["port:8000"], wait=True, publish=["127.0.0.1:%d:8000" % port])
        if r.wait is None or r.wait.result != "ready":
            raise SystemExit("dist-smoke.py: FAIL: service_start: %r" % (r,))
        step("service_start(wait=True) ready")
        body = urllib.request.urlopen("http://127.0.0.1:%d/hello.txt" % port, timeout=30).read().decode()
        expect("published port", "more", body)
        step("GET published port")
        ws.service_stop("web")
        step("service_stop")

        ws.snapshot_create("before")
        ws.exec(["rm", "/workspace/hello.txt"])
        ws.reset(to="before", force=True)
        expect("reset", "more", ws.exec(["cat", "/workspace/hello.txt"]).stdout)
        step("snapshot_create, reset")
    finally:
        ws.delete(force=True)
    try:
        c.workspace("smoke-py").show()
        raise SystemExit("dist-smoke.py: FAIL: workspace still there after delete")
    except hearth.NotFoundError:
        pass
    step("delete")


if __name__ == "__main__":
    main()
