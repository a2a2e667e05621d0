"""The project's own errors: one flat family, each named for the condition that raises it.

Every message is one line, names the file and the place in it where that applies, and never
carries a secret. Library errors (aiohttp, orjson, OS) are translated into these at one boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class MigratorError(Exception):
    """Base of every error migrator raises on purpose; str() is a one-line user message."""


class InputError(MigratorError):
    """Raised when an export document (or a file holding one) is unreadable or invalid.

    `source` names the file (or snapshot member), `path` the JSON path inside it
    (`$` for the whole document, `$.tasks[3].id` for one field).
    """

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        super().__init__(f"{source}: {path}: {message}")


class ConfigError(MigratorError):
    """Raised when the configuration file is missing, malformed, or has a wrong key or value."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file = file
        self.key = key
        self.message = message
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {message}")


class PlanError(MigratorError):
    """Raised when planning cannot place a document: missing callee, cycle, unbound value."""


class JournalError(MigratorError):
    """Raised when the journal cannot be read, recovered, locked, or written (fsync, disk full)."""


class WorkspaceError(MigratorError):
    """Raised when the run's working space (SQLite in $TMPDIR) cannot be written: a full disk."""


class ZuoraError(MigratorError):
    """Raised when a Zuora call fails for good (after the retries the policy allows).

    `status` is the HTTP status (None for a network failure), `in_doubt` is True when the request
    may have been applied although no answer arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        tenant: str | None = None,
        in_doubt: bool = False,
        retryable: bool = False,
    ) -> None:
        self.status = status
        self.tenant = tenant
        self.in_doubt = in_doubt
        self.retryable = retryable
        prefix = f"tenant {tenant}: " if tenant else ""
        super().__init__(prefix + message)


class ProtocolError(ZuoraError):
    """Raised when a 2xx answer is valid JSON but not the shape the API documents (`[]` or
    `"x"` where an object is due, a listing without its `data` list).

    Permanent: asking again gets the same answer (a keyed write is replayed as it was), so it is
    not retried. A read fails for good (`status` is the 2xx, `in_doubt` False); a write is in
    doubt, since the server may have acted on it, but must not be resent blindly with the same
    key: look the workflow up in the target instead.
    """


class AuthError(ZuoraError):
    """Raised when a tenant's credentials are rejected at the token endpoint."""


def first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception that explains a task group's failure: our own errors first."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack[:0] = list(exc.exceptions)
        else:
            leaves.append(exc)
    for leaf in leaves:
        if isinstance(leaf, MigratorError):
            return leaf
    for leaf in leaves:
        if isinstance(leaf, (KeyboardInterrupt, SystemExit)):
            return leaf
    return leaves[0] if leaves else group


@contextmanager
def single_failure() -> Iterator[None]:
    """Around a task group: its failure surfaces as the one error that caused it.

    anyio wraps every task group failure in an ExceptionGroup; callers (and users) want the
    JournalError or ZuoraError itself, with its one-line message.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        raise first_failure(group) from None
