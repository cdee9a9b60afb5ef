"""The hearth client: HTTP/JSON over the Unix socket of ``hearth serve``
(or TCP with a bearer token), standard library only.

Method names, arguments and results follow the contract's operation table
(internal/ops): ``Client.run``, ``Client.create_workspace``,
``Client.list_workspaces``, ``Client.workspace(ref)`` and the ``Workspace``
methods. Host paths (seed, sync source, export destination) are paths on the
machine ``hearth serve`` runs on; relative ones are made absolute here.
"""

import base64
import http.client
import json
import os
import shutil
import socket as _socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Mapping as _Mapping
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from .errors import InvalidArgumentError, UnavailableError, error_from_body
from .types import (
    Command,
    CommandOutput,
    DiffResult,
    ExecResult,
    ExportResult,
    PublishedPort,
    Service,
    ServiceLogs,
    ServiceStartResult,
    ServiceWait,
    Secret,
    Shell,
    ShellOutput,
    SyncResult,
    WorkspaceInfo,
)

__all__ = ["Client", "Workspace", "default_home", "default_socket"]

NDJSON = "application/x-ndjson"

#: Called with ("stdout" | "stderr", bytes) as a streamed command's output arrives.
OutputCallback = Callable[[str, bytes], None]
Env = Union[Mapping[str, str], Sequence[str], None]


def default_home() -> str:
    """The state directory: $HEARTH_HOME, else ${XDG_DATA_HOME:-~/.local/share}/hearth."""
    h = os.environ.get("HEARTH_HOME")
    if h:
        return os.path.abspath(h)
    x = os.environ.get("XDG_DATA_HOME")
    if x:
        return os.path.join(os.path.abspath(x), "hearth")
    return os.path.join(os.path.expanduser("~"), ".local", "share", "hearth")


def default_socket() -> str:
    """Where ``hearth serve`` listens by default: $XDG_RUNTIME_DIR/hearth/hearth.sock, else $HEARTH_HOME/hearth.sock."""
    x = os.environ.get("XDG_RUNTIME_DIR")
    if x:
        return os.path.join(x, "hearth", "hearth.sock")
    return os.path.join(default_home(), "hearth.sock")


class _UnixConnection(http.client.HTTPConnection):
    """An HTTPConnection over an AF_UNIX socket."""

    def __init__(self, path: str, timeout: Optional[float] = None) -> None:
        super().__init__("hearth", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


def _env_list(env: Env) -> Optional[List[str]]:
    if env is None:
        return None
    if isinstance(env, _Mapping):
        return ["%s=%s" % (k, v) for k, v in env.items()]
    return list(env)


def _abs(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    return os.path.abspath(os.fspath(path))


def _clean(d: Dict[str, Any]) -> Dict[str, Any]:
    """Drops unset (None) arguments so the server applies its defaults."""
    return {k: v for k, v in d.items() if v is not None}


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def _hearth_locations() -> List[str]:
    """Where ``hearth`` is looked for when it is not on PATH: the checkout
    this package sits in (``make build`` puts it in bin/), then the usual
    install locations (``make install`` uses /usr/local by default)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return [
        os.path.normpath(os.path.join(here, "..", "..", "bin", "hearth")),
        os.path.join(os.path.expanduser("~"), ".local", "bin", "hearth"),
        "/usr/local/bin/hearth",
        "/usr/bin/hearth",
    ]


def _find_hearth(hearth_bin: str) -> Optional[str]:
    """The hearth binary to start ``hearth serve`` with: ``hearth_bin`` when
    the caller named one, else $HEARTH_BIN, else ``hearth`` on PATH, else the
    first executable of _hearth_locations(); None when there is none."""
    if hearth_bin != "hearth":
        return hearth_bin
    env = os.environ.get("HEARTH_BIN")
    if env:
        return env
    found = shutil.which("hearth")
    if found:
        return found
    for p in _hearth_locations():
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


class Client:
    """A connection to ``hearth serve``.

    With no arguments it uses the default socket (like the server does) and,
    when nothing answers there and ``autostart`` is set, starts
    ``hearth serve`` in the background (logging to $HEARTH_HOME/serve.log)
    and waits until it is ready. The binary is ``hearth_bin`` if given, else
    $HEARTH_BIN, else ``hearth`` on PATH, else this checkout's bin/hearth,
    ~/.local/bin, /usr/local/bin or /usr/bin. A server it starts may reach
    the host paths under ``allow_paths`` (seed, sync push source, export
    destination; default: your home directory and the temporary directory),
    passed as ``--allow-path``. ``url="http://host:port"`` with ``token``
    (default $HEARTH_TOKEN) speaks to a TCP server instead.
    """

    def __init__(
        self,
        socket: Optional[str] = None,
        url: Optional[str] = None,
        token: Optional[str] = None,
        hearth_bin: str = "hearth",
        autostart: bool = True,
        timeout: Optional[float] = None,
        start_timeout: float = 30.0,
        allow_paths: Optional[Sequence[str]] = None,
    ) -> None:
        self.timeout = timeout
        if allow_paths is None:
            allow_paths = [os.path.expanduser("~"), tempfile.gettempdir()]
        self.allow_paths = [os.path.abspath(p) for p in allow_paths]
        self.token = token if token is not None else os.environ.get("HEARTH_TOKEN")
        self.url = url
        self.socket_path: Optional[str] = None
        if url:
            u = urllib.parse.urlsplit(url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise InvalidArgumentError("url %r: want http://host:port" % url)
            self._scheme, self._host, self._port = u.scheme, u.hostname, u.port
            self._prefix = u.path.rstrip("/")
            return
        self._prefix = ""
        explicit = socket is not None
        self.socket_path = os.path.abspath(socket) if socket else default_socket()
        try:
            self.health()
        except UnavailableError:
            if not autostart:
                raise
            self._autostart(hearth_bin, explicit, start_timeout)

    # -- transport ---------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self.socket_path is not None:
            return _UnixConnection(self.socket_path, timeout=self.timeout)
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _where(self) -> str:
        return self.socket_path or self.url or ""

    def _send(self, method: str, path: str, query: Optional[Dict[str, Any]], body: Optional[Dict[str, Any]], accept: str):
        target = self._prefix + path
        if query:
            items = []
            for k, v in query.items():
                if v is None:
                    continue
                for one in v if isinstance(v, (list, tuple)) else [v]:
                    items.append((k, "true" if one is True else "false" if one is False else str(one)))
            if items:
                target += "?" + urllib.parse.urlencode(items)
        headers = {"Accept": accept}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token and self.socket_path is None:
            headers["Authorization"] = "Bearer " + self.token
        conn = self._connection()
        try:
            conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise UnavailableError(
                "hearth serve at %s: %s (is `hearth serve` running?)" % (self._where(), e), status=0
            ) from e
        if resp.status >= 300:
            raw = resp.read()
            conn.close()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"error": {"kind": "internal", "message": "hearth serve: HTTP %d: %s" % (resp.status, raw[:200].decode("utf-8", "replace"))}}
            raise error_from_body(payload, resp.status)
        return conn, resp

    def _call(self, method: str, path: str, query: Optional[Dict[str, Any]] = None, body: Optional[Dict[str, Any]] = None) -> Any:
        conn, resp = self._send(method, path, query, body, "application/json")
        try:
            return json.loads(resp.read())
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise UnavailableError("hearth serve at %s: bad response: %s" % (self._where(), e)) from e
        finally:
            conn.close()

    def _exec_call(self, path: str, body: Dict[str, Any], on_output: Optional[OutputCallback]) -> ExecResult:
        if on_output is None:
            return ExecResult.from_dict(self._call("POST", path, body=body))
        conn, resp = self._send("POST", path, None, body, NDJSON)
        try:
            if not (resp.getheader("Content-Type") or "").startswith(NDJSON):
                return ExecResult.from_dict(json.loads(resp.read()))
            for line in resp:
                if not line.strip():
                    continue
                msg = json.loads(line)
                if "result" in msg:
                    return ExecResult.from_dict(msg["result"])
                if "error" in msg:
                    raise error_from_body(msg, 200)
                on_output(msg.get("stream", "stdout"), base64.b64decode(msg.get("data", "")))
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise UnavailableError("hearth serve at %s: exec stream broke: %s" % (self._where(), e)) from e
        finally:
            conn.close()
        raise UnavailableError("hearth serve at %s: exec stream ended without a result" % self._where())

    def _autostart(self, hearth_bin: str, explicit: bool, start_timeout: float) -> None:
        found = _find_hearth(hearth_bin)
        if found is None:
            raise UnavailableError(
                "no hearth serve at %s, and no hearth binary to start one: not on PATH nor in %s; "
                "run `make install` in the hearth repository, or set HEARTH_BIN or pass hearth_bin="
                % (self.socket_path, ", ".join(_hearth_locations()))
            )
        hearth_bin = found
        home = default_home()
        os.makedirs(home, mode=0o700, exist_ok=True)
        log_path = os.path.join(home, "serve.log")
        args = [hearth_bin, "serve"]
        for p in self.allow_paths:
            if os.path.isdir(p):
                args += ["--allow-path", p]
        if explicit:
            args += ["--socket", self.socket_path or ""]
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True, close_fds=True,
                )
            except OSError as e:
                raise UnavailableError(
                    "no hearth serve at %s, and starting %r failed: %s (install hearth or pass hearth_bin=)" % (self.socket_path, hearth_bin, e)
                ) from e
        deadline = time.monotonic() + start_timeout
        delay = 0.005
        while True:
            try:
                self.health()
                return
            except UnavailableError:
                pass
            code = proc.poll()
            if code is not None:
                tail = ""
                try:
                    with open(log_path, "rb") as f:
                        f.seek(max(0, os.path.getsize(log_path) - 2000))
                        tail = f.read().decode("utf-8", "replace")
                except OSError:
                    pass
                raise UnavailableError("hearth serve exited with status %d before it was ready; %s ends:\n%s" % (code, log_path, tail))
            if time.monotonic() > deadline:
                raise UnavailableError("hearth serve did not answer on %s within %.0f s (see %s)" % (self.socket_path, start_timeout, log_path))
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    # -- operations --------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        """Returns ``{"ok": True, "version": ..., "contract": ...}`` when the server is ready."""
        return self._call("GET", "/v1/health")

    def run(
        self,
        command: Union[str, Sequence[str]],
        *,
        image: Optional[str] = None,
        backend: Optional[str] = None,
        cpus: Optional[int] = None,
        memory_mib: Optional[int] = None,
        cwd: Optional[str] = None,
        env: Env = None,
        timeout_ms: Optional[int] = None,
        stdin: Union[str, bytes, None] = None,
        on_output: Optional[OutputCallback] = None,
    ) -> ExecResult:
        """Runs one command in a throwaway VM and removes it.

        ``command`` is an argv list, or a string run by ``/bin/sh -c``.
        ``stdin`` is text, or bytes for arbitrary input.
        """
        body = _exec_body(command, cwd, env, timeout_ms, stdin, None, None)
        body.update(_clean({"image": image, "backend": backend, "cpus": cpus, "memory_mib": memory_mib}))
        return self._exec_call("/v1/run", body, on_output)

    def create_workspace(
        self,
        name: Optional[str] = None,
        *,
        image: Optional[str] = None,
        backend: Optional[str] = None,
        cpus: Optional[int] = None,
        memory_mib: Optional[int] = None,
        disk_size: Optional[str] = None,
        seed: Optional[str] = None,
        publish: Optional[Iterable[str]] = None,
        allow_non_loopback: bool = False,
        disks: Optional[Iterable[str]] = None,
        secrets: Optional[Sequence[str]] = None,
        secret_env_all: bool = False,
        network: Optional[str] = None,
        rules: Optional[Sequence[Dict[str, str]]] = None,
        allow_host: Optional[Sequence[int]] = None,
    ) -> "Workspace":
        """Creates a workspace (seeded from a host directory or archive) and boots it.

        ``publish`` lists ports to publish, each ``[HOST_ADDR:]HOST_PORT:GUEST_PORT``;
        ``disks`` attaches named data disks, each "NAME:/mnt/PATH" or "NAME:/mnt/PATH:ro";
        ``secrets`` are stored secrets to expose, each ``NAME`` or ``NAME:MODE``
        (file, env or brokered); ``network`` is none (default: no network
        interface), egress or open; ``rules`` are ordered
        ``{"action": "allow"|"deny", "match": RULE}``; ``allow_host`` lists host
        loopback ports reachable at host.hearth.internal.
        """
        body = _clean({"name": name, "image": image, "backend": backend, "cpus": cpus,
                       "memory_mib": memory_mib, "disk_size": disk_size, "seed": _abs(seed),
                       "publish": list(publish) if publish else None, "allow_non_loopback": allow_non_loopback or None,
                       "disks": list(disks) if disks else None,
                       "secrets": list(secrets) if secrets else None, "secret_env_all": secret_env_all or None,
                       "network": network, "rules": list(rules) if rules else None,
                       "allow_host": list(allow_host) if allow_host else None})
        info = WorkspaceInfo.from_dict(self._call("POST", "/v1/workspaces", body=body))
        return Workspace(self, info.id, info)

    def list_workspaces(self) -> List["Workspace"]:
        """Lists workspaces, oldest first (each with ``.info``)."""
        return [Workspace(self, d["id"], WorkspaceInfo.from_dict(d)) for d in self._call("GET", "/v1/workspaces")["workspaces"]]

    def workspace(self, ref: str) -> "Workspace":
        """A handle for a workspace id or name; not checked until used."""
        return Workspace(self, ref)

    def secret_set(self, name: str, value: Union[str, bytes, None] = None, value_base64: Optional[str] = None,
                   hosts: Optional[Sequence[str]] = None, headers: Optional[Sequence[str]] = None) -> Secret:
        """Stores a secret on the host (text, or bytes for arbitrary values). The value is never returned."""
        if isinstance(value, (bytes, bytearray)):
            value, value_base64 = None, base64.b64encode(bytes(value)).decode("ascii")
        body = _clean({"value": value, "value_base64": value_base64,
                       "hosts": list(hosts) if hosts else None, "headers": list(headers) if headers else None})
        return Secret.from_dict(self._call("PUT", "/v1/secrets/" + _q(name), body=body))

    def secret_list(self) -> List[Secret]:
        """Lists stored secrets: names and metadata, never values."""
        return [Secret.from_dict(d) for d in self._call("GET", "/v1/secrets")["secrets"]]

    def secret_rm(self, name: str) -> Secret:
        """Removes a stored secret (refused while a workspace exposes it)."""
        return Secret.from_dict(self._call("DELETE", "/v1/secrets/" + _q(name)))


    # Named data disks (results are plain dicts: see docs/public-contract.md).

    def _d(self, *rest: str) -> str:
        return "/v1/disks/" + "/".join(_q(r) for r in rest)

    def create_disk(self, name: str, size: Optional[str] = None, source: Optional[str] = None) -> Dict[str, Any]:
        """Creates a named data disk (sparse ext4) of ``size`` ("1G" by default), filled from a host
        directory or archive ``source`` (validated like a seed)."""
        return self._call("POST", "/v1/disks", body=_clean({"name": name, "size": size, "source": _abs(source)}))

    def list_disks(self) -> List[Dict[str, Any]]:
        """Lists data disks with their sizes, usage and attachments."""
        return self._call("GET", "/v1/disks")["disks"]

    def disk(self, disk: str) -> Dict[str, Any]:
        """One data disk."""
        return self._call("GET", self._d(disk))

    def delete_disk(self, disk: str) -> Dict[str, Any]:
        """Removes a detached data disk and its files."""
        return self._call("DELETE", self._d(disk))

    def resize_disk(self, disk: str, size: str) -> Dict[str, Any]:
        """Grows a detached data disk to ``size`` (like "4G")."""
        return self._call("POST", self._d(disk, "resize"), body={"size": size})

    def export_disk(self, disk: str, host_dest: str, archive: bool = False, force: bool = False) -> Dict[str, Any]:
        """Copies a disk's files to a new host directory (or a tar archive)."""
        return self._call("POST", self._d(disk, "export"), body=_clean({"host_dest": _abs(host_dest), "archive": archive or None, "force": force or None}))

    def import_disk(self, disk: str, source: str) -> Dict[str, Any]:
        """Replaces a detached disk's files with a host directory or archive."""
        return self._call("POST", self._d(disk, "import"), body={"source": _abs(source)})

    def check_disk(self, disk: str, repair: bool = False) -> Dict[str, Any]:
        """Runs e2fsck on a disk (``repair`` fixes what is safe; the disk must be detached)."""
        return self._call("POST", self._d(disk, "check"), body=_clean({"repair": repair or None}))

    def disk_files_list(self, disk: str, path: Optional[str] = None) -> List[Dict[str, Any]]:
        """Lists a directory of a data disk (default its root)."""
        return self._call("GET", self._d(disk, "files"), query=_clean({"path": path}))["entries"]

    def disk_files_cat(self, disk: str, path: str, offset: Optional[int] = None, limit: Optional[int] = None) -> bytes:
        """Reads a file of a data disk (all of it, or ``limit`` bytes from ``offset``)."""
        return _cat(lambda off, n: self._call("GET", self._d(disk, "files", "content"), query=_clean({"path": path, "offset": off, "limit": n})), offset, limit)

    def disk_files_get(self, disk: str, path: str, host_dest: str, force: bool = False) -> Dict[str, Any]:
        """Copies a file or directory of a data disk to a new host path."""
        return self._call("POST", self._d(disk, "files", "get"), body=_clean({"path": path, "host_dest": _abs(host_dest), "force": force or None}))


def _cat(call: Any, offset: Optional[int], limit: Optional[int]) -> bytes:
    """Reads a file through files_cat, page by page (each result holds at most 1 MiB)."""
    out = bytearray()
    off = offset or 0
    while True:
        r = call(off or None, limit)
        data = r.get("data", "")
        b = base64.b64decode(data) if r.get("encoding") == "base64" else data.encode("utf-8")
        out += b
        nxt = r.get("next_offset", off)
        if not r.get("truncated") or nxt <= off:
            return bytes(out)
        if limit:
            limit -= nxt - off
            if limit <= 0:
                return bytes(out)
        off = nxt


def _exec_body(command: Union[str, Sequence[str]], cwd: Optional[str], env: Env, timeout_ms: Optional[int],
               stdin: Union[str, bytes, None], yield_ms: Optional[int], detach: Optional[bool]) -> Dict[str, Any]:
    body: Dict[str, Any] = {}
    if isinstance(command, str):
        body["command"] = command
    else:
        body["argv"] = [os.fspath(a) for a in command]
    stdin_b64 = None
    if isinstance(stdin, (bytes, bytearray)):
        stdin_b64, stdin = base64.b64encode(bytes(stdin)).decode("ascii"), None
    body.update(_clean({"cwd": cwd, "env": _env_list(env), "timeout_ms": timeout_ms, "stdin": stdin,
                        "stdin_base64": stdin_b64, "yield_ms": yield_ms, "detach": detach or None}))
    return body


class Workspace:
    """A handle on one workspace. ``info`` is the workspace as last seen
    (set by create, list, show, start and stop)."""

    def __init__(self, client: Client, ref: str, info: Optional[WorkspaceInfo] = None) -> None:
        self.client = client
        self.ref = ref
        self.info = info

    def __repr__(self) -> str:
        return "Workspace(%r)" % self.ref

    def _p(self, *rest: str) -> str:
        return "/v1/workspaces/" + "/".join([_q(self.ref)] + [_q(r) for r in rest])

    def _keep(self, d: Dict[str, Any]) -> WorkspaceInfo:
        self.info = WorkspaceInfo.from_dict(d)
        return self.info

    def show(self) -> WorkspaceInfo:
        """The workspace's current state."""
        return self._keep(self.client._call("GET", self._p()))

    def start(self) -> WorkspaceInfo:
        """Boots a stopped workspace, or resumes a suspended one (no-op when running)."""
        return self._keep(self.client._call("POST", self._p("start")))

    def stop(self, force: bool = False, suspend: bool = False) -> WorkspaceInfo:
        """Shuts the workspace down cleanly (no-op when stopped). It waits for
        calls in flight (at most 30 s), then refuses naming them; ``force``
        stops it anyway (they fail). ``suspend`` saves the guest's memory as
        it stops (QEMU): the next start resumes its processes."""
        body: Dict[str, Any] = {}
        if force:
            body["force"] = True
        if suspend:
            body["suspend"] = True
        return self._keep(self.client._call("POST", self._p("stop"), body=body or None))

    def delete(self, force: bool = False) -> WorkspaceInfo:
        """Deletes the workspace and all its files; a running one only with force."""
        return WorkspaceInfo.from_dict(self.client._call("DELETE", self._p(), query={"force": True} if force else None))

    def exec(
        self,
        command: Union[str, Sequence[str]],
        *,
        cwd: Optional[str] = None,
        env: Env = None,
        timeout_ms: Optional[int] = None,
        stdin: Union[str, bytes, None] = None,
        yield_ms: Optional[int] = None,
        detach: bool = False,
        secret_env: Optional[Sequence[str]] = None,
        on_output: Optional[OutputCallback] = None,
    ) -> ExecResult:
        """Runs a command: an argv list, or a string run by ``/bin/sh -c``.

        ``on_output(stream, data)`` receives output as it arrives (streamed
        over NDJSON). With ``yield_ms`` or ``detach`` a command still running
        comes back with ``status == "running"``: follow up with
        command_wait / command_read / command_kill.
        """
        body = _exec_body(command, cwd, env, timeout_ms, stdin, yield_ms, detach)
        if secret_env:
            body["secret_env"] = list(secret_env)
        return self.client._exec_call(self._p("exec"), body, on_output)

    def logs(self, tail: Optional[int] = None, offset: Optional[int] = None, limit: Optional[int] = None) -> List[Command]:
        """The command log (the last ``tail`` entries), oldest first.

        Without ``offset``/``limit`` every entry is returned, fetched page by
        page; with them, just that page."""
        if offset is not None or limit is not None:
            q = {"tail": tail, "offset": offset, "limit": limit}
            return [Command.from_dict(d) for d in self.client._call("GET", self._p("logs"), query=q)["commands"]]
        out: List[Command] = []
        off = 0
        while True:
            page = self.client._call("GET", self._p("logs"), query={"tail": tail, "offset": off, "limit": 10000})
            out += [Command.from_dict(d) for d in page["commands"]]
            if page.get("next_offset", 0) >= page.get("total", 0) or not page["commands"]:
                return out
            off = page["next_offset"]

    def logs_prune(self, keep_last: Optional[int] = None, older_than_ms: Optional[int] = None,
                   max_bytes: Optional[str] = None) -> Dict[str, Any]:
        """Removes finished commands' kept output, oldest first (all, or as selected);
        their entries stay, marked pruned. Returns pruned ids and byte counts."""
        body = _clean({"keep_last": keep_last, "older_than_ms": older_than_ms, "max_bytes": max_bytes})
        return self.client._call("POST", self._p("logs", "prune"), body=body)

    def sync_push(self, source: str, dest: Optional[str] = None, delete: bool = False,
                  exclude: Optional[Iterable[str]] = None) -> SyncResult:
        """Pushes newer files of a host directory into the workspace (default /workspace).

        ``exclude`` leaves out paths matching gitignore-syntax patterns."""
        body = _clean({"source": _abs(source), "dest": dest, "delete": delete or None,
                       "exclude": list(exclude) if exclude else None})
        return SyncResult.from_dict(self.client._call("POST", self._p("sync"), body=body))

    def diff(self, paths: Optional[Iterable[str]] = None, no_patch: bool = False,
             exclude: Optional[Iterable[str]] = None, max_patch_bytes: Optional[int] = None,
             max_total_patch_bytes: Optional[int] = None, offset: Optional[int] = None,
             limit: Optional[int] = None) -> DiffResult:
        """Compares the live /workspace with the create-time baseline.

        ``exclude`` leaves out paths matching gitignore-syntax patterns; files
        over ``max_patch_bytes`` (default 1 MiB) get no patch. At most ``limit``
        files (default 1000) come back, from ``offset``; ``next_offset`` on the
        result continues, and ``total_files`` counts them all."""
        q = {"paths": list(paths) if paths else None, "no_patch": True if no_patch else None,
             "exclude": list(exclude) if exclude else None, "max_patch_bytes": max_patch_bytes,
             "max_total_patch_bytes": max_total_patch_bytes, "offset": offset, "limit": limit}
        return DiffResult.from_dict(self.client._call("GET", self._p("diff"), query=q))

    def export(self, guest_path: str, host_dest: str, archive: bool = False, force: bool = False,
               preserve_mode: bool = False, exclude: Optional[Iterable[str]] = None) -> ExportResult:
        """Copies a path under /workspace to a new host directory (or an archive).

        setuid, setgid, sticky and world-writable bits are dropped unless
        ``preserve_mode``; ``force`` replaces whatever is at host_dest."""
        body = _clean({"guest_path": guest_path, "host_dest": _abs(host_dest), "archive": archive or None, "force": force or None,
                       "preserve_mode": preserve_mode or None, "exclude": list(exclude) if exclude else None})
        return ExportResult.from_dict(self.client._call("POST", self._p("export"), body=body))

    def command_wait(self, command_id: str, timeout_ms: Optional[int] = None) -> ExecResult:
        """Waits up to timeout_ms for a command; status "running" means it has not finished."""
        return ExecResult.from_dict(self.client._call("POST", self._p("commands", command_id, "wait"), body=_clean({"timeout_ms": timeout_ms})))

    def command_read(self, command_id: str, stream: Optional[str] = None, offset: Optional[int] = None, limit: Optional[int] = None) -> CommandOutput:
        """Reads a command's stdout (or stderr) from an offset."""
        q = {"stream": stream, "offset": offset, "limit": limit}
        return CommandOutput.from_dict(self.client._call("GET", self._p("commands", command_id, "output"), query=q))

    def command_kill(self, command_id: str, signal: Optional[str] = None) -> ExecResult:
        """Signals a running command's process group (default KILL; also INT, TERM, HUP, QUIT, USR1, USR2, TSTP, CONT)."""
        return ExecResult.from_dict(self.client._call("POST", self._p("commands", command_id, "kill"), body=_clean({"signal": signal})))

    def shell_open(self, cwd: Optional[str] = None, env: Env = None, cols: Optional[int] = None, rows: Optional[int] = None,
                   secret_env: Optional[Sequence[str]] = None) -> Shell:
        """Opens a persistent PTY shell (``secret_env`` names env secrets to set in it)."""
        body = _clean({"cwd": cwd, "env": _env_list(env), "cols": cols, "rows": rows,
                       "secret_env": list(secret_env) if secret_env else None})
        return Shell.from_dict(self.client._call("POST", self._p("shells"), body=body))

    def shell_write(self, shell_id: str, data: Union[str, bytes]) -> Shell:
        """Sends text (or exact bytes) to a shell."""
        if isinstance(data, (bytes, bytearray)):
            body = {"data_base64": base64.b64encode(bytes(data)).decode("ascii")}
        else:
            body = {"data": data}
        return Shell.from_dict(self.client._call("POST", self._p("shells", shell_id, "write"), body=body))

    def shell_read(self, shell_id: str, cursor: Optional[int] = None, wait_ms: Optional[int] = None, plain: bool = False) -> ShellOutput:
        """Reads shell output from a cursor (default: where the last read ended)."""
        q = {"cursor": cursor, "wait_ms": wait_ms, "plain": True if plain else None}
        return ShellOutput.from_dict(self.client._call("GET", self._p("shells", shell_id, "output"), query=q))

    def shell_resize(self, shell_id: str, cols: int, rows: int) -> Shell:
        """Resizes a shell's terminal."""
        return Shell.from_dict(self.client._call("POST", self._p("shells", shell_id, "resize"), body={"cols": cols, "rows": rows}))

    def shell_signal(self, shell_id: str, signal: str) -> Shell:
        """Signals a shell's foreground process group: INT, TERM, KILL, HUP, QUIT, USR1, USR2, TSTP or CONT."""
        return Shell.from_dict(self.client._call("POST", self._p("shells", shell_id, "signal"), body={"signal": signal}))

    def shell_close(self, shell_id: str) -> Shell:
        """Closes a shell session; closing a closed shell returns its final state."""
        return Shell.from_dict(self.client._call("DELETE", self._p("shells", shell_id)))

    def shell_list(self) -> List[Shell]:
        """Lists the workspace's shell sessions."""
        return [Shell.from_dict(d) for d in self.client._call("GET", self._p("shells"))["shells"]]

    # Reading files without booting, and data disks.

    def files_list(self, path: Optional[str] = None) -> List[Dict[str, Any]]:
        """Lists a directory (default /workspace). A stopped workspace is read from its disks without booting."""
        return self.client._call("GET", self._p("files"), query=_clean({"path": path}))["entries"]

    def files_cat(self, path: str, offset: Optional[int] = None, limit: Optional[int] = None) -> bytes:
        """Reads a file (symlinks followed). A stopped workspace is read from its disks without booting."""
        return _cat(lambda off, n: self.client._call("GET", self._p("files", "content"), query=_clean({"path": path, "offset": off, "limit": n})), offset, limit)

    def files_get(self, path: str, host_dest: str, force: bool = False) -> Dict[str, Any]:
        """Copies a file or directory to a new host path (the file itself, or the directory)."""
        return self.client._call("POST", self._p("files", "get"), body=_clean({"path": path, "host_dest": _abs(host_dest), "force": force or None}))

    def attach_disk(self, disk: str, path: Optional[str] = None, read_only: bool = False) -> WorkspaceInfo:
        """Attaches a data disk to the stopped workspace (mounted at ``path``, default /mnt/DISK, from its next start)."""
        return self._keep(self.client._call("POST", self._p("disks"), body=_clean({"disk": disk, "path": path, "read_only": read_only or None})))

    def detach_disk(self, disk: str) -> WorkspaceInfo:
        """Detaches a data disk from the stopped workspace."""
        return self._keep(self.client._call("POST", self._p("disks", "detach"), body={"disk": disk}))
    def snapshot_create(self, name: str, memory: bool = False) -> Dict[str, Any]:
        """Take a disk snapshot called ``name`` (running or stopped; commands keep
        running). ``memory`` also saves the running VM's memory (QEMU): a reset to
        it or a fork of it resumes the processes that ran."""
        body: Dict[str, Any] = {"name": name}
        if memory:
            body["memory"] = True
        return self.client._call("POST", self._p("snapshots"), body=body)

    def snapshot_list(self) -> Dict[str, Any]:
        """The workspace's snapshots (``snapshots``) and the bytes they take (``total_bytes``)."""
        return self.client._call("GET", self._p("snapshots"))

    def snapshot_show(self, name: str) -> Dict[str, Any]:
        """One snapshot's metadata."""
        return self.client._call("GET", self._p("snapshots", name))

    def snapshot_remove(self, name: str) -> Dict[str, Any]:
        """Remove a snapshot (not the baseline)."""
        return self.client._call("DELETE", self._p("snapshots", name))

    def reset(self, to: Optional[str] = None, force: bool = False) -> WorkspaceInfo:
        """Put the whole disk back to snapshot ``to`` (default "baseline"); ``force`` ends running commands."""
        return self._keep(self.client._call("POST", self._p("reset"), body=_clean({"to": to, "force": force or None})))

    def fork(self, name: str, from_snapshot: Optional[str] = None, count: Optional[int] = None,
             rebaseline: bool = False) -> List["Workspace"]:
        """New workspaces from snapshot ``from_snapshot`` (or the disk now), booted; ``name`` or ``name-1`` … with ``count``."""
        body = _clean({"name": name, "from_snapshot": from_snapshot, "count": count, "rebaseline": rebaseline or None})
        res = self.client._call("POST", self._p("fork"), body=body)
        return [Workspace(self.client, d["id"], WorkspaceInfo.from_dict(d)) for d in res["workspaces"]]

    def service_start(
        self,
        service: str,
        command: Sequence[str],
        *,
        cwd: Optional[str] = None,
        env: Env = None,
        ready: Optional[Iterable[str]] = None,
        restart: Optional[str] = None,
        start_limit_burst: Optional[int] = None,
        start_limit_interval_ms: Optional[int] = None,
        wait: bool = False,
        wait_timeout_ms: Optional[int] = None,
        publish: Optional[Iterable[str]] = None,
        allow_non_loopback: bool = False,
    ) -> ServiceStartResult:
        """Defines and starts a service (``command`` is an argv list).

        ``ready`` lists readiness probes (port:N, http:PORT/PATH, log:REGEX,
        file:PATH, cmd:COMMAND, notify). With ``wait=True`` the result's
        ``wait.result`` is ready, exited, stopped or timed_out; only ready is
        success.
        """
        body = _clean({"service": service, "argv": [os.fspath(a) for a in command], "cwd": cwd, "env": _env_list(env),
                       "ready": list(ready) if ready else None, "restart": restart,
                       "start_limit_burst": start_limit_burst, "start_limit_interval_ms": start_limit_interval_ms, "wait": wait or None,
                       "wait_timeout_ms": wait_timeout_ms, "publish": list(publish) if publish else None,
                       "allow_non_loopback": allow_non_loopback or None})
        return ServiceStartResult.from_dict(self.client._call("POST", self._p("services"), body=body))

    def service_list(self) -> List[Service]:
        """Lists the workspace's services."""
        return [Service.from_dict(d) for d in self.client._call("GET", self._p("services"))["services"]]

    def service_show(self, service: str) -> Service:
        """One service: state, pid, restarts, probe results, last exit."""
        return Service.from_dict(self.client._call("GET", self._p("services", service)))

    def service_logs(self, service: str, tail: Optional[int] = None, follow: bool = False,
                     on_output: Optional[OutputCallback] = None) -> ServiceLogs:
        """A service's kept output, or its last ``tail`` lines.

        With ``on_output`` the output is streamed to it (``on_output("stdout",
        data)``) as it comes; ``follow=True`` (which needs ``on_output``)
        keeps streaming until the service ends.
        """
        q = {"tail": tail, "follow": True if follow else None}
        if on_output is None:
            if follow:
                raise InvalidArgumentError("service_logs: follow=True needs on_output to stream to")
            return ServiceLogs.from_dict(self.client._call("GET", self._p("services", service, "logs"), query=q))
        q["stream"] = True
        conn, resp = self.client._send("GET", self._p("services", service, "logs"), q, None, NDJSON)
        try:
            if not (resp.getheader("Content-Type") or "").startswith(NDJSON):
                return ServiceLogs.from_dict(json.loads(resp.read()))
            for line in resp:
                if not line.strip():
                    continue
                msg = json.loads(line)
                if "result" in msg:
                    return ServiceLogs.from_dict(msg["result"])
                if "error" in msg:
                    raise error_from_body(msg, 200)
                on_output(msg.get("stream", "stdout"), base64.b64decode(msg.get("data", "")))
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise UnavailableError("hearth serve at %s: logs stream broke: %s" % (self.client._where(), e)) from e
        finally:
            conn.close()
        raise UnavailableError("hearth serve at %s: logs stream ended without a result" % self.client._where())

    def service_stop(self, service: str, signal: Optional[str] = None, timeout_ms: Optional[int] = None) -> Service:
        """Stops a service (signal, default TERM; SIGKILL after timeout_ms); it stays stopped."""
        body = _clean({"signal": signal, "timeout_ms": timeout_ms})
        return Service.from_dict(self.client._call("POST", self._p("services", service, "stop"), body=body))

    def service_restart(self, service: str) -> Service:
        """Stops a service if it runs and starts it again."""
        return Service.from_dict(self.client._call("POST", self._p("services", service, "restart"), body={}))

    def service_remove(self, service: str) -> Service:
        """Stops a service and deletes its definition."""
        return Service.from_dict(self.client._call("DELETE", self._p("services", service)))

    def service_wait(self, service: str, timeout_ms: Optional[int] = None) -> ServiceWait:
        """Waits for a service to be ready or to end; only result "ready" is success."""
        return ServiceWait.from_dict(self.client._call("POST", self._p("services", service, "wait"), body=_clean({"timeout_ms": timeout_ms})))

    def port_publish(self, port: str, allow_non_loopback: bool = False) -> PublishedPort:
        """Publishes ``[HOST_ADDR:]HOST_PORT:GUEST_PORT`` on the host."""
        body = _clean({"port": port, "allow_non_loopback": allow_non_loopback or None})
        return PublishedPort.from_dict(self.client._call("POST", self._p("ports"), body=body))

    def port_list(self) -> List[PublishedPort]:
        """Lists the published ports."""
        return [PublishedPort.from_dict(d) for d in self.client._call("GET", self._p("ports"))["ports"]]

    def port_unpublish(self, port: str) -> PublishedPort:
        """Stops publishing a host port (``[HOST_ADDR:]HOST_PORT``)."""
        return PublishedPort.from_dict(self.client._call("DELETE", self._p("ports", port)))
    def secret_add(self, name: str, mode: Optional[str] = None, hosts: Optional[Sequence[str]] = None,
                   headers: Optional[Sequence[str]] = None) -> WorkspaceInfo:
        """Exposes a stored secret: mode file, env (default) or brokered."""
        body = _clean({"mode": mode, "hosts": list(hosts) if hosts else None, "headers": list(headers) if headers else None})
        return self._keep(self.client._call("PUT", self._p("secrets", name), body=body))

    def secret_rm(self, name: str) -> WorkspaceInfo:
        """Stops exposing a secret to the workspace."""
        return self._keep(self.client._call("DELETE", self._p("secrets", name)))
    def network_show(self) -> Dict[str, Any]:
        """The workspace's network policy, guest addresses, and whether the running VM enforces it."""
        return self.client._call("GET", self._p("network"))

    def network_set(self, network: Optional[str] = None, rules: Optional[Sequence[Dict[str, str]]] = None,
                    allow_host: Optional[Sequence[int]] = None) -> Dict[str, Any]:
        """Replaces the network policy (live on a running workspace with a network).

        ``rules`` are ordered ``{"action": "allow"|"deny", "match": RULE}``."""
        body = _clean({"network": network, "rules": list(rules) if rules else None,
                       "allow_host": list(allow_host) if allow_host else None})
        return self.client._call("PUT", self._p("network"), body=body)

    def network_log(self, tail: Optional[int] = None, after: Optional[str] = None) -> List[Dict[str, Any]]:
        """The network log: DNS queries and flows with the deciding rule (events after ``after``, an RFC 3339 time)."""
        return self.client._call("GET", self._p("network", "log"), query={"tail": tail, "after": after})["events"]

    def network_test(self) -> Dict[str, Any]:
        """Runs the network self-test inside the guest; ``ok`` says whether enforcement holds."""
        return self.client._call("POST", self._p("network", "test"))
