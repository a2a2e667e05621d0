"""Task names in the HTML page's task graphs are text, never markup (issue 21, the tests).

End to end: a workflow whose task names are HTML and SVG injections is migrated over HTTP, edited
on the target (a task renamed to another injection), and `migrator diff --html` draws both task
graphs of the drifted cell. The page is read as a browser would (html.parser): no element or
event attribute comes from a name, and every name is in the page's text whole.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from migrator.fake import FakeConfig
from migrator.run.migrate import migrate
from migrator.run.options import MigrateOptions
from tests.builders import small_export
from tests.helpers import run_cli, running_fake

pytestmark = pytest.mark.anyio

T1 = "tenant-1"
HOSTILE = [
    "<script>alert(1)</script>",
    '</text></g></svg><svg onload=alert(3)>"><img src=x onerror=alert(2)>',
    "<i>" * 20 + "&amp; long enough to be shortened",
]
RENAMED = "'><svg/onload=alert(4)><title>x</title>"
# Elements a name could smuggle in; the page itself has none of them (its one inline script for
# the filters is checked apart).
FORBIDDEN = {"img", "iframe", "object", "embed", "i", "foreignobject"}


class Page(HTMLParser):
    """Every start tag with its attributes, and the page's text as a browser shows it."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        else:
            self.text.append(data)


def hostile_export() -> dict[str, Any]:
    doc = small_export("Hostile graph")
    for task, name in zip(doc["tasks"], HOSTILE, strict=True):
        task["name"] = name
    return doc


async def test_task_names_in_the_graphs_are_escaped(tmp_path: Path) -> None:
    """A drifted cell's two task graphs show injected task names as text: no script, image or event attribute comes from them, and each name is in the page's text whole."""
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "hostile.json").write_bytes(orjson.dumps(hostile_export()))
    async with running_fake(FakeConfig.demo(1)) as env:
        report = await migrate(env.settings, MigrateOptions(sources=[str(sources)]))
        [item] = report.items
        assert item.status == "imported", report.to_json()
        [version] = env.fake.state.list_versions(T1, item.target_workflow_id)

        def rename(doc: dict[str, Any]) -> None:
            doc["tasks"][0]["name"] = RENAMED

        env.fake.state.alter_version(T1, int(version["id"]), rename)
        run = await run_cli(env, tmp_path, "diff", str(sources), "--html", "page.html")
        assert run.code == 1, run.err
    page = Page()
    page.feed((tmp_path / "page.html").read_text())
    tags = [t for t, _ in page.tags]
    assert tags.count("svg") >= 2, "both task graphs are drawn"
    assert not FORBIDDEN.intersection(tags)
    assert not [a for t, a in page.tags if t == "script" and a]  # inline, no src
    assert not [s for s in page.scripts if "alert(" in s]
    assert not [(t, a) for t, attrs in page.tags for a in attrs if a.lower().startswith("on")]
    text = "".join(page.text)
    for name in [*HOSTILE, RENAMED]:
        assert name in text, name
