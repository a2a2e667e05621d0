"""migrator: move Zuora Workflow definitions between tenants, many at a time, safely.

The package root only re-exports; each private module owns one thing (see docs/architecture.md).
"""

TYPE_CHECKING = False  # not from typing: this package must load in no time (see __getattr__)
if TYPE_CHECKING:
    from migrator.core.errors import (
        ConfigError,
        InputError,
        JournalError,
        MigratorError,
        PlanError,
        ZuoraError,
    )

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InputError",
    "JournalError",
    "MigratorError",
    "PlanError",
    "ZuoraError",
    "__version__",
]


def __getattr__(name: str) -> object:
    # Loaded on first use: `migrator` (the command) starts by importing this package, and a
    # Ctrl-C then must reach migrator.cli.main, which turns it into one line.
    if name in __all__:
        from migrator.core import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'migrator' has no attribute {name!r}")
