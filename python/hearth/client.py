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
        network: Optional[str] = None,
        rules: Optional[Sequence[Dict[str, str]]] = None,
        allow_host: Optional[Sequence[int]] = None,
    ) -> "Workspace":
        """Creates a workspace (seeded from a host directory or archive) and boots it.

        ``network`` is none (default: no network interface), egress or open;
        ``rules`` are ordered ``{"action": "allow"|"deny", "match": RULE}``;
        ``allow_host`` lists host loopback ports reachable at host.hearth.internal."""
        body = _clean({"name": name, "image": image, "backend": backend, "cpus": cpus,
                       "memory_mib": memory_mib, "disk_size": disk_size, "seed": _abs(seed),
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
        """Boots a stopped workspace (no-op when running)."""
        return self._keep(self.client._call("POST", self._p("start")))

    def stop(self) -> WorkspaceInfo:
        """Shuts the workspace down cleanly (no-op when stopped)."""
        return self._keep(self.client._call("POST", self._p("stop")))

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
        on_output: Optional[OutputCallback] = None,
    ) -> ExecResult:
        """Runs a command: an argv list, or a string run by ``/bin/sh -c``.

        ``on_output(stream, data)`` receives output as it arrives (streamed
        over NDJSON). With ``yield_ms`` or ``detach`` a command still running
        comes back with ``status == "running"``: follow up with
        command_wait / command_read / command_kill.
        """
        body = _exec_body(command, cwd, env, timeout_ms, stdin, yield_ms, detach)
        return self.client._exec_call(self._p("exec"), body, on_output)

    def logs(self, tail: Optional[int] = None) -> List[Command]:
        """The command log (the last ``tail`` entries)."""
        return [Command.from_dict(d) for d in self.client._call("GET", self._p("logs"), query={"tail": tail})["commands"]]

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
             max_total_patch_bytes: Optional[int] = None) -> DiffResult:
        """Compares the live /workspace with the create-time baseline.

        ``exclude`` leaves out paths matching gitignore-syntax patterns; files
        over ``max_patch_bytes`` (default 1 MiB) get no patch."""
        q = {"paths": list(paths) if paths else None, "no_patch": True if no_patch else None,
             "exclude": list(exclude) if exclude else None, "max_patch_bytes": max_patch_bytes,
             "max_total_patch_bytes": max_total_patch_bytes}
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

    def shell_open(self, cwd: Optional[str] = None, env: Env = None, cols: Optional[int] = None, rows: Optional[int] = None) -> Shell:
        """Opens a persistent PTY shell."""
        body = _clean({"cwd": cwd, "env": _env_list(env), "cols": cols, "rows": rows})
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
