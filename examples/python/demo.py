"""hearth from Python: create -> exec -> sync push -> diff -> export -> delete.

Run from the repository root:  PYTHONPATH=python python3 examples/python/demo.py
(starts `hearth serve` in the background if none is running; set HEARTH_BIN to
use a hearth binary that is not on PATH).
"""

import os
import tempfile

import hearth


def main() -> None:
    c = hearth.Client()
    work = tempfile.mkdtemp(prefix="hearth-demo-")
    project = os.path.join(work, "project")
    os.makedirs(project)
    with open(os.path.join(project, "hello.txt"), "w") as f:
        f.write("hello\n")

    ws = c.create_workspace(name="py-demo-%d" % os.getpid(), seed=project)
    print("created", ws.info.name, ws.info.id, ws.info.state)
    try:
        r = ws.exec(["sh", "-c", "cd /workspace && mkdir -p dist && wc -c hello.txt > dist/size.txt && cat dist/size.txt"])
        print("exec: exit", r.exit_code, "stdout", repr(r.stdout))

        with open(os.path.join(project, "hello.txt"), "a") as f:
            f.write("more\n")
        s = ws.sync_push(project)
        print("sync push: sent", s.sent, "files,", s.bytes, "bytes")

        for f in ws.diff().files:
            print("diff:", f.status, f.path)

        e = ws.export("/workspace/dist", os.path.join(work, "dist"))
        print("export:", e.files, "file(s) to", e.host_path)
    finally:
        ws.delete(force=True)
        print("deleted", ws.ref)
    try:
        c.workspace(ws.ref).show()
    except hearth.NotFoundError as err:
        print("gone:", err)


if __name__ == "__main__":
    main()
