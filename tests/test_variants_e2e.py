"""The end-to-end migration against every variant the fake can play (issue 18).

For each preset in `FakeConfig.variants()`: the samples migrate into a fresh fake playing it, a
second run imports nothing, and the fake's ledger holds each document exactly once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from migrator.fake import FakeConfig
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.builders import ALL_BUT_FILE_REFS, _config, sample_docs
from tests.conftest import SAMPLES
from tests.helpers import running_fake

pytestmark = pytest.mark.anyio

# Why a variant cannot pass yet; each reason names what would make it pass.
_XFAIL = {
    # Not fixable in the client: the server gives tasks new ids on import, and a payload is
    # sent before they exist, so no payload can name them. See docs/remapping.md.
    "no-file-ref-rewrite": pytest.mark.xfail(
        strict=True,
        reason="spec §9.1: a tenant that renumbers tasks on import without rewriting "
        "`Name__<taskId>` file references leaves them dangling; the target then never matches "
        "the source, so every run imports the file-passing samples again (doctor reports it as "
        "file-refs: differs)",
    ),
}


_XFAIL["all-flipped"] = _XFAIL["no-file-ref-rewrite"]
# all-flipped with file references rewritten: every other open behaviour at once must pass.


def _variant_params() -> list[object]:
    names = [*FakeConfig.variants(), ALL_BUT_FILE_REFS]
    return [pytest.param(name, marks=_XFAIL[name]) if name in _XFAIL else name for name in names]


@pytest.mark.parametrize("variant", _variant_params())
async def test_samples_migrate_exactly_once_in_every_variant(tmp_path: Path, variant: str) -> None:
    """Migrating the samples twice into a tenant playing `variant` lands each document exactly once."""
    docs = sample_docs()
    config = _config(variant)
    async with running_fake(config) as env:
        journal = str(tmp_path / "j.jsonl")
        first = await migrate(env.settings, MigrateOptions(sources=[str(SAMPLES)], journal=journal))
        assert first.ok, first.to_json()
        landed = len(env.imports("tenant-1"))
        # A fresh journal: the second run must find everything on the target itself.
        again = await migrate(
            env.settings,
            MigrateOptions(sources=[str(SAMPLES)], journal=str(tmp_path / "j2.jsonl")),
        )
        assert again.ok, again.to_json()
        ledger = env.imports("tenant-1")
        assert len(ledger) == landed, "the second run imported something again"
        assert Counter(e["name"] for e in ledger) == Counter(d.name for d in docs)
        assert len({e["idempotency_key"] for e in ledger}) == len(ledger)
