"""Result types of the hearth API, as dataclasses.

Field names are the JSON names of the contract (docs/public-contract.md).
Unknown JSON fields from newer servers are ignored.
"""

import base64
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Type, TypeVar

__all__ = [
    "WorkspaceInfo",
    "ExecResult",
    "Command",
    "CommandOutput",
    "DiffFile",
    "DiffSummary",
    "DiffResult",
    "ExportResult",
    "SyncResult",
    "Shell",
    "ShellOutput",
    "Service",
    "ServiceProbe",
    "ServiceExit",
    "ServiceWait",
    "ServiceStartResult",
    "ServiceLogs",
    "PublishedPort",
]

T = TypeVar("T")


def _decode(cls: Type[T], d: Dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in d.items() if k in names})  # type: ignore[call-arg]


def _bytes(text: str, encoding: Optional[str]) -> bytes:
    if encoding == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


@dataclass
class WorkspaceInfo:
    """A workspace as the server last saw it."""

    id: str = ""
    name: str = ""
    image: str = ""
    backend: str = ""
    state: str = ""
    created_at: str = ""
    cpus: int = 0
    memory_mib: int = 0
    disk_size_bytes: int = 0
    pid: int = 0
    supervisor_pid: int = 0
    started_at: Optional[str] = None
    accel: str = ""
    seed: str = ""
    last_exit: str = ""
    error: str = ""
    console_log: str = ""
    snapshots: int = 0
    snapshot_bytes: int = 0
    parent: str = ""
    # The secrets it exposes: dicts with name, mode and, for brokered,
    # placeholder, hosts and headers (never values).
    secrets: Optional[List[Dict[str, Any]]] = None
    secret_env_all: bool = False
    # A stop with suspend saved its memory: the next start resumes it.
    suspended: bool = False
    suspended_at: Optional[str] = None

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "WorkspaceInfo":
        return _decode(cls, d)


@dataclass
class Secret:
    """A stored secret's metadata: never its value."""

    name: str = ""
    bytes: int = 0
    created_at: str = ""
    updated_at: str = ""
    hosts: Optional[List[str]] = None
    headers: Optional[List[str]] = None
    workspaces: Optional[List[str]] = None

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Secret":
        return _decode(cls, d)


@dataclass
class ExecResult:
    """The outcome of a command.

    ``stdout`` and ``stderr`` are text (bytes that are not UTF-8 are
    replaced); ``stdout_raw`` and ``stderr_raw`` are the exact bytes.
    ``stdout_bytes`` counts all output, also beyond what the result holds
    (see ``stdout_truncated``).
    """

    status: str = ""
    exit_code: int = 0
    reason: str = ""
    command_id: str = ""
    signal: str = ""
    timed_out: bool = False
    duration_ms: int = 0
    stdout: str = ""
    stderr: str = ""
    stdout_encoding: str = ""
    stderr_encoding: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_offset: int = 0
    stderr_offset: int = 0
    message: str = ""
    stdout_raw: bytes = b""
    stderr_raw: bytes = b""

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ExecResult":
        r = _decode(cls, d)
        r.stdout_raw = _bytes(r.stdout, r.stdout_encoding)
        r.stderr_raw = _bytes(r.stderr, r.stderr_encoding)
        r.stdout = r.stdout_raw.decode("utf-8", "replace")
        r.stderr = r.stderr_raw.decode("utf-8", "replace")
        return r

    @property
    def ok(self) -> bool:
        """True when the command finished with exit code 0."""
        return self.status == "finished" and self.exit_code == 0


@dataclass
class Command:
    """An entry of a workspace's command log."""

    id: str = ""
    argv: List[str] = field(default_factory=list)
    shell: str = ""
    cwd: str = ""
    started_at: str = ""
    duration_ms: int = 0
    exit_code: Optional[int] = None
    reason: str = ""
    signal: str = ""
    status: str = ""
    detached: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    message: str = ""
    stdout_dropped_bytes: int = 0
    stderr_dropped_bytes: int = 0
    pruned: bool = False

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Command":
        return _decode(cls, d)


@dataclass
class CommandOutput:
    """A slice of a logged command's output; ``raw`` is the exact bytes."""

    command_id: str = ""
    stream: str = ""
    data: str = ""
    encoding: str = ""
    offset: int = 0
    next_offset: int = 0
    total_bytes: int = 0
    status: str = ""
    raw: bytes = b""

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "CommandOutput":
        r = _decode(cls, d)
        r.raw = _bytes(r.data, r.encoding)
        r.data = r.raw.decode("utf-8", "replace")
        return r


@dataclass
class DiffFile:
    """One changed path: status is added, modified, deleted, type_changed or mode_changed."""

    status: str = ""
    path: str = ""
    type: str = ""
    old_type: str = ""
    old_mode: str = ""
    new_mode: str = ""
    old_size: Optional[int] = None
    new_size: Optional[int] = None
    binary: bool = False
    patch: str = ""
    patch_omitted: str = ""
    insertions: int = 0
    deletions: int = 0
    old_target: str = ""
    new_target: str = ""

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "DiffFile":
        return _decode(cls, d)


@dataclass
class DiffSummary:
    """Counts of a diff's changes."""

    added: int = 0
    modified: int = 0
    deleted: int = 0
    type_changed: int = 0
    mode_changed: int = 0
    files: int = 0
    insertions: int = 0
    deletions: int = 0

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "DiffSummary":
        return _decode(cls, d)


@dataclass
class DiffResult:
    """The live /workspace compared with its create-time baseline."""

    files: List[DiffFile] = field(default_factory=list)
    summary: DiffSummary = field(default_factory=DiffSummary)
    total_files: int = 0
    next_offset: Optional[int] = None

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "DiffResult":
        return cls(
            files=[DiffFile.from_dict(f) for f in d.get("files") or []],
            summary=DiffSummary.from_dict(d.get("summary") or {}),
            total_files=int(d.get("total_files") or 0),
            next_offset=d.get("next_offset"),
        )


@dataclass
class ExportResult:
    """What an export wrote (host_path is on the machine hearth serve runs on)."""

    guest_path: str = ""
    host_path: str = ""
    archive: bool = False
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    warnings: List[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ExportResult":
        r = _decode(cls, d)
        r.warnings = r.warnings or []
        return r


@dataclass
class SyncResult:
    """What a sync push did."""

    source: str = ""
    dest: str = ""
    scanned: int = 0
    sent: int = 0
    bytes: int = 0
    deleted: int = 0
    warnings: List[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "SyncResult":
        r = _decode(cls, d)
        r.warnings = r.warnings or []
        return r


@dataclass
class Shell:
    """A persistent PTY shell session."""

    id: str = ""
    state: str = ""
    exit_code: Optional[int] = None
    cols: int = 0
    rows: int = 0
    cwd: str = ""
    created_at: str = ""
    output_bytes: int = 0

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Shell":
        return _decode(cls, d)


@dataclass
class ShellOutput:
    """Shell output from ``cursor`` to ``next_cursor``; ``raw`` is the exact bytes."""

    output: str = ""
    encoding: str = ""
    cursor: int = 0
    next_cursor: int = 0
    dropped_bytes: int = 0
    state: str = ""
    exit_code: Optional[int] = None
    raw: bytes = b""

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ShellOutput":
        r = _decode(cls, d)
        r.raw = _bytes(r.output, r.encoding)
        r.output = r.raw.decode("utf-8", "replace")
        return r


@dataclass
class ServiceProbe:
    """A readiness probe's latest result."""

    probe: str = ""
    ok: bool = False
    passing: bool = False
    failures: int = 0
    checks: int = 0
    checked_at: Optional[str] = None
    detail: str = ""

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ServiceProbe":
        return _decode(cls, d)


@dataclass
class ServiceExit:
    """How a service's process ended: exit code or signal, and the tail of its output."""

    exit_code: int = 0
    signal: str = ""
    at: str = ""
    tail: str = ""
    message: str = ""

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ServiceExit":
        return _decode(cls, d)


@dataclass
class Service:
    """A named long-running process supervised in the guest (docs/services.md)."""

    name: str = ""
    state: str = ""
    pid: int = 0
    restarts: int = 0
    started_at: Optional[str] = None
    ready_at: Optional[str] = None
    next_start_at: Optional[str] = None
    probes: List[ServiceProbe] = field(default_factory=list)
    last_exit: Optional[ServiceExit] = None
    message: str = ""
    argv: List[str] = field(default_factory=list)
    cwd: str = ""
    env: List[str] = field(default_factory=list)
    ready: List[str] = field(default_factory=list)
    restart: str = ""

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Service":
        s = _decode(cls, d)
        s.probes = [ServiceProbe.from_dict(p) for p in (d.get("probes") or [])]
        s.last_exit = ServiceExit.from_dict(d["last_exit"]) if d.get("last_exit") else None
        s.argv, s.env, s.ready = s.argv or [], s.env or [], s.ready or []
        return s


@dataclass
class ServiceWait:
    """The outcome of waiting for a service: ``result`` is ready, exited,
    stopped or timed_out; only ready is success (see ``ok``)."""

    result: str = ""
    service: Service = field(default_factory=Service)
    exit_code: Optional[int] = None
    signal: str = ""
    tail: str = ""

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ServiceWait":
        w = _decode(cls, d)
        w.service = Service.from_dict(d.get("service") or {})
        return w

    @property
    def ok(self) -> bool:
        return self.result == "ready"


@dataclass
class PublishedPort:
    """A host port forwarded to a guest port."""

    host_addr: str = ""
    host_port: int = 0
    guest_port: int = 0
    active: bool = False
    error: str = ""
    connections: int = 0
    open: int = 0

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PublishedPort":
        return _decode(cls, d)


@dataclass
class ServiceStartResult:
    """What starting a service returns; ``wait`` is set when it waited."""

    service: Service = field(default_factory=Service)
    wait: Optional[ServiceWait] = None
    ports: List[PublishedPort] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ServiceStartResult":
        return cls(service=Service.from_dict(d.get("service") or {}),
                   wait=ServiceWait.from_dict(d["wait"]) if d.get("wait") else None,
                   ports=[PublishedPort.from_dict(p) for p in (d.get("ports") or [])])


@dataclass
class ServiceLogs:
    """A service's output (``output_raw`` holds the exact bytes)."""

    service: str = ""
    output: str = ""
    encoding: str = ""
    truncated: bool = False
    streamed: bool = False
    output_raw: bytes = b""

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ServiceLogs":
        r = _decode(cls, d)
        r.output_raw = _bytes(r.output, r.encoding)
        r.output = r.output_raw.decode("utf-8", "replace")
        return r
