"""The drift page in a real browser: headless Chromium renders a generated page, runs its
script, and the DOM is read afterwards (filters, tooltips, printing, layout at 1024 px).

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON
messages ended by a NUL byte on fds 3 and 4), so no port is opened. Skipped when `chromium` is
not on PATH; `make browser-check` installs it (as root, with apt-get) and runs this file.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator.render.html import render_html
from tests.drift_page import BLOCKED, HOSTILE, sample_report

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not on PATH (`make browser-check` installs it)"
    ),
    pytest.mark.xdist_group("browser"),  # one Chromium for the module, on one worker
]

# Hang guard only: how long to wait for Chromium to answer at all. No assertion is about time.
_PATIENCE = 120.0


def _high(fd: int) -> int:
    """The same pipe end at a descriptor number of 10 or more (the original is closed)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # The child's ends move above 3 and 4 first, so that setting up fds 3 and 4 in the
        # child cannot overwrite one of them.
        to_chrome_r, from_chrome_w = (_high(to_chrome_r), _high(from_chrome_w))
        flags = [
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--mute-audio",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        # The protocol lives on the child's fds 3 (commands in) and 4 (answers out).
        command = " ".join([CHROMIUM, *flags, "about:blank"])
        self._proc = subprocess.Popen(
            # bash, not sh: dash takes single-digit descriptors only.
            ["bash", "-c", f"exec {command} 3<&{to_chrome_r} 4>&{from_chrome_w}"],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self._session: str | None = None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Runtime.enable")
        self.send("Log.enable")
        self.send("Page.enable")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command (to the page once attached) and wait for its answer."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None and not method.startswith("Target."):
            message["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            if "method" in answer:
                self.events.append(answer)

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + _PATIENCE
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(0.0, left))
            if not ready:
                raise RuntimeError("chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def open(self, url: str, width: int, height: int = 900) -> None:
        """Load `url` at a `width` by `height` viewport and wait until the page's script ran."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.events.clear()
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + _PATIENCE
        while self.js("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise RuntimeError("the page never finished loading")
            time.sleep(0.05)
        # Inline scripts run before the load event: the page's own ran to its last line.
        assert self.js("document.documentElement.getAttribute('data-ready')") == "1"

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (returned by value)."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def errors(self) -> list[dict[str, Any]]:
        """Script exceptions, console errors and failed loads the page produced."""
        bad = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if (
                method == "Runtime.exceptionThrown"
                or (method == "Runtime.consoleAPICalled" and params.get("type") == "error")
                or (method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error")
            ):
                bad.append(event)
        return bad

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except RuntimeError:
            pass
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("page") / "drift.html"
    path.write_text(render_html(sample_report(), generated="2026-12-08 00:00 UTC"), "utf-8")
    return path.as_uri()


def _select_tenant(browser: Browser, value: str) -> None:
    browser.js(
        f"(function(){{var s=document.getElementById('ft');s.value={json.dumps(value)};"
        "s.dispatchEvent(new Event('change'));})()"
    )


def _only_statuses(browser: Browser, letters: str) -> None:
    browser.js(
        "document.querySelectorAll('#fs input').forEach(function(b){"
        f"var on={json.dumps(letters)}.indexOf(b.value)>=0;"
        "if(b.checked!==on){b.checked=on;b.dispatchEvent(new Event('change'));}})"
    )


_VISIBLE_ROWS = (
    "Array.from(document.querySelectorAll('#matrix tbody tr')).filter(function(r)"
    "{return !r.hidden;}).map(function(r){return r.children[0].textContent;})"
)
_SHOWN = "(function(id){var e=document.getElementById(id);return !!e&&e.offsetParent!==null;})"


def test_the_page_runs_without_script_errors_or_outside_resources(
    browser: Browser, page_url: str
) -> None:
    """The page's script runs to its end with no exception or console error, and the page asks
    for nothing beyond itself."""
    browser.open(page_url, 1024)
    assert browser.errors() == []
    assert browser.js("performance.getEntriesByType('resource').length") == 0
    assert browser.js("document.images.length") == 0  # the hostile <img> name stayed text
    assert HOSTILE.split(" ")[0] in browser.js("document.body.textContent")


@pytest.mark.parametrize("width", [1024, 1400])
def test_nothing_is_wider_than_the_viewport(browser: Browser, page_url: str, width: int) -> None:
    """At 1024 and 1400 px the page needs no horizontal scrolling, with every drift open, and
    the two graphs are stacked, each wholly inside the viewport."""
    browser.open(page_url, width)
    browser.js("document.querySelectorAll('details').forEach(function(d){d.open=true;})")
    assert browser.js("document.documentElement.scrollWidth") <= width
    boxes = browser.js(
        "Array.from(document.querySelectorAll('details figure svg')).map(function(s)"
        "{var r=s.getBoundingClientRect();return [r.left,r.right,r.top,r.bottom];})"
    )
    assert len(boxes) == 2
    (_, right_s, _, bottom_s), (_, right_t, top_t, _) = boxes
    assert top_t >= bottom_s  # the tenant's graph below the sources'
    assert max(right_s, right_t) <= width


def test_tenant_filter_hides_other_columns_and_emptied_groups(
    browser: Browser, page_url: str
) -> None:
    """Choosing a tenant shows its column alone, and the Drifted and Failed groups disappear,
    headings included, when that tenant has nothing in them."""
    browser.open(page_url, 1024)
    assert browser.js(_SHOWN + "('drifted')") and browser.js(_SHOWN + "('failed')")
    tenants = browser.js(
        "Array.from(document.querySelectorAll('#ft option')).map(function(o){return o.text;})"
    )
    in_sync = str(tenants.index("tenant-00"))
    _select_tenant(browser, in_sync)
    shown_columns = browser.js(
        "Array.from(document.querySelectorAll('#matrix thead th')).filter(function(c)"
        "{return !c.hidden;}).map(function(c){return c.textContent;})"
    )
    assert shown_columns == ["workflow", "tenant-00"]
    assert not browser.js(_SHOWN + "('drifted')")
    assert not browser.js(_SHOWN + "('failed')")
    _select_tenant(browser, str(tenants.index("apac-prod")))
    assert browser.js(_SHOWN + "('failed')") and not browser.js(_SHOWN + "('drifted')")
    assert (
        browser.js(
            "Array.from(document.querySelectorAll('ul.failures li')).filter(function(l)"
            "{return !l.hidden;}).length"
        )
        == 1
    )
    _select_tenant(browser, "")
    assert browser.js(_SHOWN + "('drifted')") and browser.js(_SHOWN + "('failed')")


def test_status_filter_keeps_rows_with_a_checked_status(browser: Browser, page_url: str) -> None:
    """With only "missing" checked, only the workflow missing somewhere is listed, the groups of
    other statuses hide (a "would be blocked" line follows its cell's status), and with nothing
    checked the page says that nothing matches."""
    browser.open(page_url, 1024)
    _only_statuses(browser, "m")
    assert browser.js(_VISIBLE_ROWS) == ["Payment retry"]
    assert not browser.js(_SHOWN + "('drifted')") and not browser.js(_SHOWN + "('failed')")
    # A line saying what a migration would block follows the status of its cell (in sync here).
    _only_statuses(browser, "i")
    assert browser.js(_SHOWN + "('failed')")
    assert browser.js(
        "Array.from(document.querySelectorAll('ul.failures li')).filter(function(l)"
        "{return !l.hidden;}).map(function(l){return l.textContent;})"
    ) == [
        f"production-eu.example.com: would be blocked: {BLOCKED} (Invoice sync to the data warehouse (nightly, all entities))"
    ]
    assert not browser.js(_SHOWN + "('none')")
    _only_statuses(browser, "")
    assert browser.js(_VISIBLE_ROWS) == []
    assert browser.js(_SHOWN + "('none')")
    _only_statuses(browser, "idmef")
    assert len(browser.js(_VISIBLE_ROWS)) == 5


def test_missing_and_failed_cells_carry_their_reason(browser: Browser, page_url: str) -> None:
    """Hovering a missing or failed cell names the workflow, the tenant, the status and why."""
    browser.open(page_url, 1024)
    titles = browser.js(
        "Array.from(document.querySelectorAll('#matrix td.m,#matrix td.f')).map(function(c)"
        "{return c.title;})"
    )
    assert (
        "Payment retry on production-eu.example.com: missing: no workflow of that name on the tenant"
        in titles
    )
    assert (
        "Payment retry on sandbox-us: failed: export of version 77 failed: HTTP 500 after 6 attempts"
        in titles
    )
    assert (
        "Dunning by region on apac-prod: failed: login failed: 401 (credentials rejected)" in titles
    )
    assert all(t for t in titles)


def test_printing_opens_every_drift(browser: Browser, page_url: str) -> None:
    """Before printing every drift's details open (so the graphs print); after, they close again."""
    browser.open(page_url, 1024)
    count = "document.querySelectorAll('details[open]').length"
    assert browser.js(count) == 0
    browser.js("window.dispatchEvent(new Event('beforeprint'))")
    assert browser.js(count) == browser.js("document.querySelectorAll('details').length") > 0
    browser.js("window.dispatchEvent(new Event('afterprint'))")
    assert browser.js(count) == 0


def test_fan_out_labels_sit_apart_beside_their_arrows(browser: Browser, page_url: str) -> None:
    """The Case_1 / Case_2 / Case_3 / Case_Else labels of a fan-out do not overlap one another,
    and each sits nearer its own arrow than any sibling arrow."""
    browser.open(page_url, 1024)
    browser.js("document.querySelectorAll('details').forEach(function(d){d.open=true;})")
    labels = browser.js(
        """Array.from(document.querySelectorAll('details figure')[0].querySelectorAll('svg g'))
        .filter(function(g){return g.querySelector('line')&&g.querySelector('text');})
        .map(function(g){var t=g.querySelector('text'),l=g.querySelector('line'),b=t.getBBox();
          return {text:t.textContent,box:[b.x,b.y,b.x+b.width,b.y+b.height],
                  line:[l.x1.baseVal.value,l.y1.baseVal.value,l.x2.baseVal.value,l.y2.baseVal.value]};})"""
    )
    fan = [x for x in labels if x["text"].startswith("Case_")]
    assert sorted(x["text"] for x in fan) == ["Case_1", "Case_2", "Case_3", "Case_Else"]

    def overlap(a: list[float], b: list[float]) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    def distance(box: list[float], line: list[float]) -> float:
        # From the label's centre to the arrow (as a segment).
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x1, y1, x2, y2 = line
        dx, dy = x2 - x1, y2 - y1
        t = max(0.0, min(1.0, ((cx - x1) * dx + (cy - y1) * dy) / (dx * dx + dy * dy)))
        return float(((x1 + t * dx - cx) ** 2 + (y1 + t * dy - cy) ** 2) ** 0.5)

    for i, a in enumerate(fan):
        for b in fan[i + 1 :]:
            assert not overlap(a["box"], b["box"]), (a["text"], b["text"])
        own = distance(a["box"], a["line"])
        assert all(own < distance(a["box"], b["line"]) for b in fan if b is not a), a["text"]
