"""Issue 8, secrets and transport: the canary test through the real CLI, config rules, TLS, Track-Ids.

`migrator` runs as a subprocess against the fake Zuora served in-process on 127.0.0.1; the test
wraps the fake's token store to learn every token it issues, then greps every output for them.
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import anyio
import pytest
import structlog
from aiohttp import web

import migrator
from migrator.core import logs
from migrator.core.config import Secret, Settings, TenantConfig, load_settings
from migrator.core.errors import AuthError, ConfigError, ZuoraError
from migrator.fake import FakeConfig, FakeTenant, RunningFake, serve
from migrator.fake._config import FaultConfig
from migrator.zuora import ZuoraClient, open_session
from migrator.zuora.calls import valid_track_id
from tests.conftest import SAMPLES
from tests.helpers import run_migrator

CANARY = "CANARY-s3cr3t-5f0c2e9a7b1d4e3f"
WRONG = "CANARY-wr0ng-s3cr3t-8a6b4c2d0e"  # configured for a tenant whose real secret differs
FLAKY = "CANARY-fl4ky-s3cr3t-1c3e5a7b9d"
TRACK_FORBIDDEN = set(":;\"'")


@dataclass
class Seen:
    """What the fake saw and handed out during a run."""

    tokens: list[str] = field(default_factory=list)
    track_ids: list[str] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=list)


def spy(fake: RunningFake, seen: Seen, *, expire_after: int | None = None) -> None:
    """Record every issued token and every request's Track-Id/Idempotency-Key; optionally make the
    fake forget tenant "canary"'s tokens once, after `expire_after` authenticated calls."""
    issue, lookup, dispatch = fake.tokens.issue, fake.tokens.lookup, fake.dispatch
    count = 0

    def spy_issue(tenant: str, ttl: float, now: float) -> str:
        token = issue(tenant, ttl, now)
        seen.tokens.append(token)
        return token

    def spy_lookup(value: str, now: float) -> str | None:
        nonlocal count
        tenant = lookup(value, now)
        if tenant == "canary" and expire_after is not None:
            count += 1
            if count == expire_after:
                fake.tokens.expire_all("canary")  # the token expires early, server-side
                return None
        return tenant

    async def spy_dispatch(request: web.Request) -> web.StreamResponse:
        if "Zuora-Track-Id" in request.headers:
            seen.track_ids.append(request.headers["Zuora-Track-Id"])
        if "Idempotency-Key" in request.headers:
            seen.idempotency_keys.append(request.headers["Idempotency-Key"])
        return await dispatch(request)

    fake.tokens.issue = spy_issue  # type: ignore[method-assign]
    fake.tokens.lookup = spy_lookup  # type: ignore[method-assign]
    fake.dispatch = spy_dispatch  # type: ignore[method-assign]


def fake_config() -> FakeConfig:
    return FakeConfig(
        tenants=[
            FakeTenant(name="canary", client_id="canary-client", client_secret=CANARY),
            FakeTenant(
                name="wrong", client_id="wrong-client", client_secret="the-real-secret-of-wrong"
            ),
            FakeTenant(
                name="flaky",
                client_id="flaky-client",
                client_secret=FLAKY,
                faults=FaultConfig(error_rate=0.3, error_statuses=(500, 502, 503)),
            ),
        ],
        seed=8,
    )


def write_config(path: Path, base_url: str) -> dict[str, str]:
    lines = []
    for name in ("canary", "wrong", "flaky"):
        lines += [
            f"[tenants.{name}]",
            f'base_url = "{base_url}"',
            f'client_id = "{name}-client"',
            f'client_secret_env = "SECTEST_{name.upper()}"',
            "",
        ]
    lines += ["[settings]", "backoff_base = 0.01", "backoff_cap = 0.05", "max_attempts = 8", ""]
    path.write_text("\n".join(lines))
    return {"SECTEST_CANARY": CANARY, "SECTEST_WRONG": WRONG, "SECTEST_FLAKY": FLAKY}


async def cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    run = await run_migrator(args, env, cwd)
    return run.code, run.out + "\n" + run.err


def sources(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for sample in (
        "01-welcome-new-account.json",
        "06-usage-overage-alert.json",
        "08-normalise-tax-ids.json",
    ):
        shutil.copy(SAMPLES / sample, src / sample)
    (src / "broken.json").write_text('{"workflow": ')
    return src


def assert_clean(blob: str, secrets: list[str]) -> None:
    for value in secrets:
        assert value not in blob, f"leaked {value[:10]}…"


@pytest.mark.slow
@pytest.mark.anyio
async def test_canary_secret_and_tokens_never_reach_any_output(tmp_path: Path) -> None:
    """With --debug in JSON and console logs, a 401 tenant, 5xx faults, a bad file and a token expired server-side, no output, journal, report or status text carries a configured secret or any token the fake issued."""
    src = sources(tmp_path)
    cfg = tmp_path / "migrator.toml"
    seen = Seen()
    outputs: list[str] = []
    async with serve(fake_config()) as fake:
        spy(fake, seen, expire_after=4)
        env = write_config(cfg, fake.base_url)
        runs = [
            ["--debug", "--log-format", "json", "--journal", "j1.jsonl", "--report", "r1.json"],
            ["--debug", "--journal", "j2.jsonl", "--report", "r2.json"],
            [
                "--debug",
                "--log-format",
                "json",
                "--journal",
                "j1.jsonl",
                "--report",
                "r3.json",
                "--retry-failed",
            ],
        ]
        for extra in runs:
            code, text = await cli(
                ["migrate", str(src), "--config", str(cfg), "--progress", "never", *extra],
                env,
                tmp_path,
            )
            assert code == 1, text  # the wrong tenant and the broken file always fail
            outputs.append(text)
        for journal in ("j1.jsonl", "j2.jsonl"):
            for extra in ([], ["--json"], ["--debug", "--log-format", "json"]):
                code, text = await cli(["status", "--journal", journal, *extra], {}, tmp_path)
                outputs.append(text)
        landed = {t: {e["name"] for e in fake.ledger(t)} for t in ("canary", "wrong", "flaky")}
    blob = "\n".join(outputs)
    # The runs did what they claim: imports landed, the wrong secret was refused, faults and the
    # server-side expiry were met, debug logs were written.
    assert len(landed["canary"]) == 3 and len(landed["flaky"]) == 3 and not landed["wrong"]
    assert "credentials rejected (401" in blob
    assert '"zuora attempt"' in blob and "zuora attempt" in outputs[1]
    assert (
        '"status": 401' in blob or '"status":401' in blob
    )  # the expired token was met and refreshed
    assert re.search(r'"status": ?50[023]', blob)
    assert len(seen.tokens) >= 4, seen.tokens  # one per tenant per run, plus the refresh
    files = [p for p in tmp_path.iterdir() if p.suffix in (".json", ".jsonl")]
    assert {p.name for p in files} == {"j1.jsonl", "j2.jsonl", "r1.json", "r2.json", "r3.json"}
    blob += "\n".join(p.read_text() for p in files)
    assert_clean(blob, [CANARY, WRONG, FLAKY, "the-real-secret-of-wrong", *seen.tokens])
    # Reports and journals are private files (0600), whatever the umask.
    for p in files:
        assert p.stat().st_mode & 0o077 == 0, (p.name, oct(p.stat().st_mode))
    # SECURITY.md: no document bodies in the journal (a query clause and a task name of sample 01).
    for journal in ("j1.jsonl", "j2.jsonl"):
        text = (tmp_path / journal).read_text()
        assert "Data.Account.Id" not in text and "Fetch Account" not in text
    # Track-Ids the tool generated follow Zuora's rules; idempotency keys stay within 255.
    assert seen.track_ids and seen.idempotency_keys
    for track in seen.track_ids:
        assert 1 <= len(track) <= 64 and track.isascii() and track.isprintable(), track
        assert not TRACK_FORBIDDEN & set(track), track
    for key in seen.idempotency_keys:
        assert 1 <= len(key) <= 255 and all(" " < c <= "~" for c in key), key


# ---------------------------------------------------------------- a server that echoes credentials


@asynccontextmanager
async def echo_server(token: str) -> AsyncIterator[str]:
    """A hostile server: the token endpoint echoes the posted form in a 401 for client "bad" and
    hands `token` out otherwise; every API call answers 500 quoting the Authorization header."""

    async def oauth(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") == "bad":
            return web.json_response({"error": f"bad form {dict(form)}"}, status=401)
        return web.json_response({"access_token": token, "expires_in": 3600})

    async def api(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        return web.Response(
            status=500,
            text=f"<html><title>boom for {auth}</title></html>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_post("/oauth/token", oauth)
    app.router.add_route("*", "/{tail:.*}", api)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.anyio
async def test_server_echoing_secret_and_token_is_scrubbed_everywhere(tmp_path: Path) -> None:
    """A server that echoes the posted secret and the bearer token in its error bodies gets neither into the CLI's output, report, journal or exception texts."""
    token = "CANARY-t0ken-3e1f5a7c9b2d4e6f"
    src = sources(tmp_path)
    async with echo_server(token) as url:
        cfg = tmp_path / "migrator.toml"
        cfg.write_text(
            f'[tenants.good]\nbase_url = "{url}"\nclient_id = "good"\nclient_secret_env = "SECTEST_GOOD"\n\n'
            f'[tenants.bad]\nbase_url = "{url}"\nclient_id = "bad"\nclient_secret_env = "SECTEST_BAD"\n\n'
            "[settings]\nbackoff_base = 0.0\nbackoff_cap = 0.0\nmax_attempts = 2\n"
        )
        env = {"SECTEST_GOOD": CANARY, "SECTEST_BAD": WRONG}
        outputs = []
        for fmt in ("json", "console"):
            code, text = await cli(
                [
                    "migrate",
                    str(src),
                    "--config",
                    str(cfg),
                    "--progress",
                    "never",
                    "--debug",
                    "--log-format",
                    fmt,
                    "--journal",
                    f"j-{fmt}.jsonl",
                    "--report",
                    f"r-{fmt}.json",
                ],
                env,
                tmp_path,
            )
            assert code == 1, text
            outputs.append(text)
        # The same, in-process: exception texts and reprs.
        settings = load_settings(cfg, env=env)
        async with open_session(settings) as session:
            for name in ("good", "bad"):
                client = ZuoraClient(settings.tenants[name], session, settings, sleep=_no_sleep)
                with pytest.raises(ZuoraError) as info:
                    await client.list_workflows()
                if name == "bad":
                    assert isinstance(info.value, AuthError)
                outputs += [str(info.value), repr(info.value), repr(client), repr(client.auth)]
        outputs += [repr(settings), str(settings), repr(settings.tenants["good"])]
    blob = "\n".join(outputs)
    assert "boom for" in blob  # the server's text was shown, scrubbed
    assert "bad form" in blob
    for p in tmp_path.iterdir():
        if p.suffix in (".json", ".jsonl"):
            blob += p.read_text()
    assert_clean(blob, [CANARY, WRONG, token])


async def _no_sleep(_: float) -> None:
    return None


# ---------------------------------------------------------------- config: reprs, https, secrets files


def test_config_objects_never_show_the_secret(tmp_path: Path) -> None:
    """repr() and str() of Secret, TenantConfig and Settings loaded from a file never contain the secret."""
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[tenants.p]\nbase_url = "https://z.example.com"\nclient_id = "c"\nclient_secret_env = "S"\n'
    )
    settings = load_settings(cfg, env={"S": CANARY})
    assert settings.tenants["p"].client_secret.reveal() == CANARY
    texts = [
        repr(settings),
        str(settings),
        repr(settings.tenants["p"]),
        str(settings.tenants["p"].client_secret),
        f"{settings.tenants['p'].client_secret!r}",
        repr(dict(settings.tenants)),
    ]
    assert_clean("\n".join(texts), [CANARY])


@pytest.mark.parametrize(
    ("url", "insecure", "ok"),
    [
        ("http://zuora.example.com", None, False),
        ("http://zuora.example.com", False, False),
        ("http://zuora.example.com", True, True),
        ("http://10.0.0.8:8080", None, False),
        ("https://zuora.example.com", None, True),
        ("http://127.0.0.1:8080", None, True),
        ("http://localhost:8080", None, True),
        ("http://[::1]:8080", None, True),
    ],
)
def test_https_is_required_off_loopback(
    tmp_path: Path, url: str, insecure: bool | None, ok: bool
) -> None:
    """Plain http is refused for a non-loopback base_url unless allow_insecure_http = true; https and loopback pass."""
    cfg = tmp_path / "m.toml"
    extra = "" if insecure is None else f"allow_insecure_http = {str(insecure).lower()}\n"
    cfg.write_text(
        f'[tenants.p]\nbase_url = "{url}"\nclient_id = "c"\nclient_secret_env = "S"\n{extra}'
    )
    if ok:
        assert load_settings(cfg, env={"S": "x"}).tenants["p"].base_url == url
    else:
        with pytest.raises(ConfigError) as info:
            load_settings(cfg, env={"S": "x"})
        assert str(info.value).startswith(f"{cfg}: tenants.p.base_url: plain http is only allowed")


def _secret_file_config(tmp_path: Path, mode: int) -> Path:
    secret = tmp_path / "prod.secret"
    secret.write_text(CANARY + "\n")
    secret.chmod(mode)
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[tenants.p]\nbase_url = "https://z.example.com"\nclient_id = "c"\nclient_secret_file = "prod.secret"\n'
    )
    return cfg


@pytest.mark.parametrize(
    ("mode", "warned"),
    [(0o644, True), (0o640, True), (0o604, True), (0o600, False), (0o400, False)],
)
def test_secrets_file_readable_by_others_is_warned(tmp_path: Path, mode: int, warned: bool) -> None:
    """A secrets file readable by group or others loads with a warning naming the file (never the secret); 0600 loads silently."""
    cfg = _secret_file_config(tmp_path, mode)
    with structlog.testing.capture_logs() as events:
        settings = load_settings(cfg, env={})
    assert settings.tenants["p"].client_secret.reveal() == CANARY
    warnings = [e for e in events if e["log_level"] == "warning"]
    assert bool(warnings) == warned
    if warned:
        assert "readable by other users" in warnings[0]["event"]
        assert warnings[0]["file"] == str(tmp_path / "prod.secret")
    assert_clean(repr(events), [CANARY])


def test_secrets_file_warning_through_the_cli(tmp_path: Path) -> None:
    """Through the CLI, a 0644 secrets file gives a one-line warning on stderr naming the file, and the secret is not printed."""
    cfg = _secret_file_config(tmp_path, 0o644)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "migrator.cli",
            "plan",
            str(tmp_path / "none.json"),
            "--config",
            str(cfg),
            "--tenant",
            "nope",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "readable by other users" in result.stderr and "prod.secret" in result.stderr
    assert "Traceback" not in result.stderr
    assert_clean(result.stdout + result.stderr, [CANARY])


def test_missing_secrets_file_is_a_clear_error(tmp_path: Path) -> None:
    """A client_secret_file that does not exist is a ConfigError naming the config file and the key."""
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[tenants.p]\nbase_url = "https://z.example.com"\nclient_id = "c"\nclient_secret_file = "gone.secret"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    assert (
        str(info.value)
        == f"{cfg}: tenants.p.client_secret_file: cannot read secrets file: No such file or directory"
    )


def test_redaction_of_registered_secrets_and_secret_keys() -> None:
    """The log processor redacts registered values anywhere, bearer tokens, and secret-named keys at any depth."""
    logs.register_secret(CANARY)
    event = {
        "event": f"failed with {CANARY}",
        "headers": {"Authorization": "Bearer abc.def", "X": [f"x{CANARY}x"]},
        "detail": "got Bearer zzz-TOKEN-1 back",
        "client_secret": "short",
        "nested": ({"access_token": "t"},),
        "error": RuntimeError(f"boom {CANARY}"),
    }
    out = logs.redact_processor(None, "info", dict(event))
    text = repr(out)
    assert CANARY not in text and "abc.def" not in text and "zzz-TOKEN-1" not in text
    assert out["client_secret"] == logs.REDACTED
    assert out["nested"][0]["access_token"] == logs.REDACTED


# ---------------------------------------------------------------- TLS


def test_no_tls_verification_switch_in_the_package() -> None:
    """Nothing in the package turns certificate or host name checks off."""
    root = Path(migrator.__file__).parent
    pattern = re.compile(
        r"ssl\s*=\s*False|verify_ssl|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context"
    )
    hits = [
        f"{p}:{n}"
        for p in root.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


@pytest.mark.anyio
async def test_session_verifies_certificates() -> None:
    """open_session's connector verifies certificates (ssl=True, the default context)."""
    settings = Settings(file="x", tenants={})
    async with open_session(settings) as session:
        connector = session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        assert connector._ssl is True  # aiohttp: True means the default, verifying context


@pytest.mark.anyio
async def test_self_signed_certificate_is_refused(tmp_path: Path) -> None:
    """A tenant behind a self-signed certificate is never talked to: the token request fails before any HTTP reaches the server."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    await anyio.run_process(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
    )
    hits = 0

    async def anything(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.json_response({"access_token": "tok", "expires_in": 3600})

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        tenant = TenantConfig(
            name="tls",
            base_url=f"https://127.0.0.1:{port}",
            client_id="c",
            client_secret=Secret(CANARY),
        )
        settings = Settings(
            file="x", tenants={"tls": tenant}, max_attempts=2, backoff_base=0.0, backoff_cap=0.0
        )
        async with open_session(settings) as session:
            client = ZuoraClient(tenant, session, settings, sleep=_no_sleep)
            with pytest.raises(ZuoraError) as info:
                await client.list_workflows()
            # Positive control: the same server answers a client that trusts the certificate.
            trusting = ssl.create_default_context(cafile=str(cert))
            async with session.get(f"https://127.0.0.1:{port}/x", ssl=trusting) as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()
    assert hits == 1  # only the positive control got through
    assert "\n" not in str(info.value)
    assert "certificate" in str(info.value)  # says what is wrong, and is not retried for nothing
    assert "after 2 attempts" not in str(info.value)
    assert_clean(str(info.value), [CANARY])


# ---------------------------------------------------------------- Track-Ids and keys from the client


@pytest.mark.anyio
@pytest.mark.parametrize("run_id", ["a" * 80, "run-1", "x" * 31])
async def test_generated_track_ids_are_valid_for_any_run_id(run_id: str) -> None:
    """Track-Ids stay within 64 printable US-ASCII characters without : ; \" ' whatever the run id length."""
    tenant = TenantConfig(
        name="t", base_url="https://z.example.com", client_id="c", client_secret=Secret("s")
    )
    settings = Settings(file="x", tenants={"t": tenant})
    async with open_session(settings) as session:
        client = ZuoraClient(tenant, session, settings, run_id=run_id)
        for _ in range(1000):
            track = client._next_track_id()
            assert valid_track_id(track) and len(track) <= 64, track


async def gossip_run(tmp_path: Path) -> tuple[int, str, str, str]:
    """Migrate against a shared host that quotes every secret it was sent in its import errors:
    exit code, stdout+stderr, journal text, report text."""
    posted: list[str] = []
    both = anyio.Event()

    async def oauth(request: web.Request) -> web.Response:
        form = await request.post()
        posted.append(str(form.get("client_secret")))
        if len(posted) >= 2:
            both.set()
        if form.get("client_id") == "bad":
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response({"access_token": "tok-gossip-0123456789", "expires_in": 3600})

    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"data": [], "pagination": {}})

    async def gossip(request: web.Request) -> web.Response:
        await both.wait()
        return web.json_response({"message": f"secrets seen today: {posted}"}, status=400)

    app = web.Application()
    app.router.add_post("/oauth/token", oauth)
    app.router.add_get("/workflows", listing)
    app.router.add_route("*", "/{tail:.*}", gossip)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    src = sources(tmp_path)
    cfg = tmp_path / "migrator.toml"
    cfg.write_text(
        f'[tenants.good]\nbase_url = "{url}"\nclient_id = "good"\nclient_secret_env = "SECTEST_GOOD"\n\n'
        f'[tenants.bad]\nbase_url = "{url}"\nclient_id = "bad"\nclient_secret_env = "SECTEST_BAD"\n'
    )
    try:
        code, text = await cli(
            [
                "migrate",
                str(src),
                "--config",
                str(cfg),
                "--progress",
                "never",
                "--journal",
                "j.jsonl",
                "--report",
                "r.json",
            ],
            {"SECTEST_GOOD": CANARY, "SECTEST_BAD": WRONG},
            tmp_path,
        )
    finally:
        await runner.cleanup()
    return code, text, (tmp_path / "j.jsonl").read_text(), (tmp_path / "r.json").read_text()


@pytest.mark.anyio
async def test_a_server_gossiping_another_tenants_secret_stays_out_of_output_and_report(
    tmp_path: Path,
) -> None:
    """When a shared host echoes tenant A's secret in its answers to tenant B, neither stdout/stderr nor the report carries it."""
    code, text, _, report = await gossip_run(tmp_path)
    assert code == 1, text
    assert "secrets seen today" in text  # the server's words reached the user, scrubbed
    assert_clean(text + report, [CANARY, WRONG, "tok-gossip-0123456789"])


@pytest.mark.anyio
async def test_a_server_gossiping_another_tenants_secret_stays_out_of_the_journal(
    tmp_path: Path,
) -> None:
    """When a shared host echoes tenant A's secret in its answers to tenant B, the journal does not carry it."""
    _, _, journal, _ = await gossip_run(tmp_path)
    assert "secrets seen today" in journal  # the import failure was journaled
    assert_clean(journal, [CANARY, WRONG, "tok-gossip-0123456789"])
