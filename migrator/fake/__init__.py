"""The built-in fake Zuora: a multi-tenant aiohttp.web stand-in for the Workflow API.

Only re-exports; see docs/fake-zuora.md for what is faithful, what is inferred, and every knob.
"""

from migrator.fake._cli import main
from migrator.fake._client_config import how_to_run_migrator, write_client_config
from migrator.fake._config import FakeConfig, FakeTenant, FaultConfig, load_config
from migrator.fake._errors import ApiError
from migrator.fake._server import RunningFake, serve
from migrator.fake._state import FakeState

__all__ = [
    "ApiError",
    "FakeConfig",
    "FakeState",
    "FakeTenant",
    "FaultConfig",
    "RunningFake",
    "how_to_run_migrator",
    "load_config",
    "main",
    "serve",
    "write_client_config",
]
