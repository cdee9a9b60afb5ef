"""hearth: persistent microVM workspaces, from Python.

Speaks the HTTP/JSON API of ``hearth serve`` (standard library only)::

    import hearth
    c = hearth.Client()
    ws = c.create_workspace(name="demo", seed="./project")
    r = ws.exec(["make", "test"])          # r.exit_code, r.stdout, r.stderr
    ws.sync_push("./project")
    for f in ws.diff().files:
        print(f.status, f.path)
    ws.export("/workspace/dist", "./dist")
    c.workspace("demo").delete(force=True)
"""

from .client import Client, Workspace, default_home, default_socket
from .errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConflictError,
    FailedPreconditionError,
    HearthError,
    HearthTimeoutError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    NotImplementedByServerError,
    ResourceExhaustedError,
    UnavailableError,
)
from .types import (
    Command,
    CommandOutput,
    DiffFile,
    DiffResult,
    DiffSummary,
    ExecResult,
    ExportResult,
    PublishedPort,
    Service,
    ServiceExit,
    ServiceLogs,
    ServiceProbe,
    ServiceStartResult,
    ServiceWait,
    Secret,
    Shell,
    ShellOutput,
    SyncResult,
    WorkspaceInfo,
)

__version__ = "0.1.0"

__all__ = [
    "Client", "Workspace", "default_home", "default_socket",
    "HearthError", "NotFoundError", "AlreadyExistsError", "InvalidArgumentError",
    "FailedPreconditionError", "ConflictError", "UnavailableError", "HearthTimeoutError",
    "NotImplementedByServerError", "ResourceExhaustedError", "InternalError", "AuthenticationError",
    "Command", "CommandOutput", "DiffFile", "DiffResult", "DiffSummary", "ExecResult",
    "ExportResult", "Shell", "ShellOutput", "SyncResult", "WorkspaceInfo",
    "Service", "ServiceProbe", "ServiceExit", "ServiceWait", "ServiceStartResult", "ServiceLogs", "PublishedPort",
    "Secret",
]
