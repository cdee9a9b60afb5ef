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
    CanceledError,
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

# The SDK's version follows the contract it speaks: 1.x speaks contract 1.
__version__ = "1.0.0"
CONTRACT_VERSION = "1.0"

__all__ = [
    "CONTRACT_VERSION", "Client", "Workspace", "default_home", "default_socket",
    "HearthError", "NotFoundError", "AlreadyExistsError", "InvalidArgumentError",
    "FailedPreconditionError", "ConflictError", "UnavailableError", "HearthTimeoutError",
    "NotImplementedByServerError", "ResourceExhaustedError", "CanceledError", "InternalError", "AuthenticationError",
    "Command", "CommandOutput", "DiffFile", "DiffResult", "DiffSummary", "ExecResult",
    "ExportResult", "Shell", "ShellOutput", "SyncResult", "WorkspaceInfo",
    "Service", "ServiceProbe", "ServiceExit", "ServiceWait", "ServiceStartResult", "ServiceLogs", "PublishedPort",
    "Secret",
]
