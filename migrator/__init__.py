"""migrator: move Zuora Workflow definitions between tenants, many at a time, safely.

The package root only re-exports; each private module owns one thing (see docs/architecture.md).
"""

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
