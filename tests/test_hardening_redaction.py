"""Echoed secrets (issue 14, item 11): a server that echoes the OAuth form, in any encoding and
cut anywhere, never gets the client secret into an error, a log line, the output, a report or a
journal."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, quote_plus

import anyio
import orjson
import pytest
import structlog
from aiohttp import web

from migrator.core import logs
from migrator.core.errors import AuthError, ZuoraError
from migrator.zuora import ZuoraClient, open_session
from migrator.zuora.http import MAX_DETAIL, error_detail
from tests.builders import small_export
from tests.helpers import assert_no_traceback, make_settings, run_migrator, serve_app

CLIENT_ID = "client-id-1"
# Characters that every encoding spells differently: + / = " \ space & and a non-ASCII letter.
SECRET = 'CANARY+x/y=z"q\\w ü&k-7f3e9a1c5b'


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forms(secret: str, client_id: str = CLIENT_ID) -> list[str]:
    """Every spelling of the secret a server might echo (computed here, not by the code under test)."""
    return [
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        b64(secret),
        b64(f"{client_id}:{secret}"),
    ]


def leaks(blob: str, secret: str, client_id: str = CLIENT_ID, width: int = 8) -> list[str]:
    """Every 8-character stretch of any spelling of the secret found in `blob`."""
    found = []
    for form in forms(secret, client_id):
        # The start of the Basic form spells only the client id: not a secret.
        start = len(b64(client_id + ":")) - 4 if form == b64(f"{client_id}:{secret}") else 0
        for i in range(start, len(form) - width + 1):
            if form[i : i + width] in blob:
                found.append(form[i : i + width])
    return found


def test_every_encoding_of_a_registered_secret_is_redacted() -> None:
    """Raw, both URL encodings, both JSON escapings, base64 of the secret and of `id:secret` are all redacted."""
    logs.register_credentials(CLIENT_ID, SECRET)
    for form in forms(SECRET):
        text = logs.redact_text(f"the server said: <{form}> and more")
        assert leaks(text, SECRET) == [], (form, text)
        assert logs.REDACTED in text


def test_the_start_of_a_secret_cut_off_by_someone_else_is_redacted() -> None:
    """A text cut inside a secret (at its end or before an ellipsis) loses that cut-off start too."""
    logs.register_credentials(CLIENT_ID, SECRET)
    encoded = quote_plus(SECRET)
    assert logs.redact_text("echo: client_secret=" + encoded[:12]) == (
        "echo: client_secret=" + logs.REDACTED
    )
    clipped = logs.redact_text("echo: client_secret=" + encoded[:9] + "… (after 3 attempts)")
    assert leaks(clipped, SECRET, width=6) == [] and clipped.endswith("… (after 3 attempts)")


def test_an_error_detail_cut_at_300_characters_shows_no_start_of_the_secret() -> None:
    """An echoed form whose secret straddles the 300-character cut is redacted before the cut."""
    logs.register_credentials(CLIENT_ID, SECRET)
    form = f"client_id={CLIENT_ID}&client_secret={quote_plus(SECRET)}&grant_type=client_credentials"
    for shift in range(0, 20):
        padding = "x" * (MAX_DETAIL - len(f"client_id={CLIENT_ID}&client_secret=") - shift)
        detail = error_detail((padding + form).encode())
        assert leaks(detail, SECRET, width=4) == [], (shift, detail)


# ---- over HTTP: a token endpoint that echoes the form ------------------------------------------


def echo_handler(mode: str) -> web.RequestHandler:  # type: ignore[name-defined]
    async def token(request: web.Request) -> web.Response:
        raw = (await request.read()).decode()
        form = await request.post()
        secret = str(form.get("client_secret"))
        client_id = str(form.get("client_id"))
        every = (
            f"form {raw}; json {json.dumps(secret)}; basic {b64(client_id + ':' + secret)}; "
            f"b64 {b64(secret)}"
        )
        if mode == "401":
            return web.Response(status=401, text=f"invalid_client: {every}")
        if mode == "400":
            # JSON with no known message key: shown re-encoded as JSON (escaped quotes).
            return web.json_response({"what": every, "secret": secret}, status=400)
        # 500: the secret straddles the 300-character cut of the error text.
        lead = "x" * (MAX_DETAIL - raw.index("client_secret=") - len("client_secret=") - 12)
        return web.Response(status=500, text=lead + raw + " " + every)

    return token  # type: ignore[return-value]


@asynccontextmanager
async def echo_server(mode: str) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/oauth/token", echo_handler(mode))
    async with serve_app(app) as base:
        yield base


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["400", "401", "500"])
async def test_an_echoing_token_endpoint_never_gets_the_secret_out(
    mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token endpoint echoing the form (raw, URL-encoded, JSON, base64) in a 400, 401 or 500: no spelling of the secret in the error, its repr, the logs or the output."""
    with structlog.testing.capture_logs() as events:
        async with echo_server(mode) as base:
            settings = make_settings(base, max_attempts=2)
            settings.tenants["prod"].client_secret._value = SECRET  # type: ignore[attr-defined]
            async with open_session(settings) as session:
                client = ZuoraClient(settings.tenants["prod"], session, settings, run_id="t1")
                with pytest.raises(ZuoraError) as info:
                    await client.get_workflow(1)
    if mode != "500":
        assert isinstance(info.value, AuthError)
    assert "invalid_client" in str(info.value) or mode != "401"
    captured = capsys.readouterr()
    blob = "\n".join(
        [str(info.value), repr(info.value), captured.out, captured.err] + [repr(e) for e in events]
    )
    assert leaks(blob, SECRET, width=6) == [], blob


@pytest.mark.anyio
async def test_migrate_against_echoing_token_endpoints_keeps_the_secret_out_of_every_output(
    tmp_path: Path,
) -> None:
    """`migrator migrate` against token endpoints echoing the form (401 and 500): no spelling of either secret on stdout, stderr, the report or the journal."""
    secrets = {"a": SECRET + "-a", "b": SECRET + "-b"}
    app = web.Application()
    handlers = {"id-a": echo_handler("401"), "id-b": echo_handler("500")}

    async def token(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        return await handlers[str(form.get("client_id"))](request)

    app.router.add_post("/oauth/token", token)
    src = tmp_path / "doc.json"
    src.write_bytes(orjson.dumps(small_export("Never sent")))
    async with serve_app(app) as base:
        cfg = tmp_path / "m.toml"
        cfg.write_text(
            "".join(
                f'[tenants.{name}]\nbase_url = "{base}"\nclient_id = "id-{name}"\n'
                f'client_secret_env = "ECHO_SECRET_{name.upper()}"\n\n'
                for name in secrets
            )
            + "[settings]\nmax_attempts = 2\nbackoff_base = 0.01\nbackoff_cap = 0.02\n"
        )
        env = {f"ECHO_SECRET_{n.upper()}": s for n, s in secrets.items()}
        with anyio.fail_after(120):
            run = await run_migrator(
                [
                    "migrate",
                    str(src),
                    "--config",
                    str(cfg),
                    "--progress",
                    "never",
                    "--report",
                    str(tmp_path / "report.json"),
                    "--journal",
                    str(tmp_path / "j.jsonl"),
                ],
                env,
                tmp_path,
            )
    assert_no_traceback(run)
    assert run.code != 0
    files = [
        (tmp_path / name).read_text("utf-8", "replace")
        for name in ("report.json", "j.jsonl")
        if (tmp_path / name).exists()
    ]
    assert files, os.listdir(tmp_path)
    blob = "\n".join([run.out, run.err, *files])
    assert "credentials rejected" in blob  # the 401 tenant's failure is reported
    for name, secret in secrets.items():
        assert leaks(blob, secret, f"id-{name}", width=6) == [], blob
