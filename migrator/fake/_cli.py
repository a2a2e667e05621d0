"""`migrator fake-zuora` / `python -m migrator.fake`: parse flags, serve until SIGINT/SIGTERM.

Prints `listening on URL` (flushed) once the socket is bound, then one line per tenant with its
client id; secrets only with `--show-secrets`; `--write-config FILE` writes a migrator config.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from contextlib import suppress
from dataclasses import replace
from typing import Any

from migrator.core.errors import MigratorError
from migrator.fake._client_config import how_to_run_migrator, write_client_config
from migrator.fake._config import VARIANTS, FakeConfig, load_config, with_tenant_knobs
from migrator.fake._server import serve
from migrator.render.help import described

_TENANT_FLAGS = {
    "requests_per_minute": int,
    "max_concurrency": int,
    "token_ttl": float,
    "error_rate": float,
    "lost_response_rate": float,
    "reset_rate": float,
    "latency": float,
    "latency_jitter": float,
    "slow_body": float,
}


_TENANT_HELP = {
    "requests_per_minute": "API requests a tenant allows per minute",
    "max_concurrency": "concurrent requests a tenant allows before answering 429",
    "token_ttl": "seconds an OAuth token lives",
    "error_rate": "share of requests answered with an injected 5xx, work not done (0..1)",
    "lost_response_rate": "share of requests whose work is done but whose answer is lost (0..1)",
    "reset_rate": "share of requests whose connection is reset before the work (0..1)",
    "latency": "seconds added before each answer",
    "latency_jitter": "+/- seconds of uniform jitter around --latency",
    "slow_body": "seconds over which each answer body is trickled out",
}


# Flags whose value, when given, sets the FakeConfig field of the same name.
_VALUE_FLAGS = (
    "import_response_id",
    "name_filter",
    "retry_after",
    "error_bodies",
    "listing_spelling",
    "import_answer",
    "camel_case_triggers",
    "export_without_active",
    "run_seconds",
    "state_file",
    "seed_file",
    "idempotent_replay",
    "token_requests_per_minute_per_ip",
)

# Flags without a value: the FakeConfig field each one sets, and to what.
_SWITCHES = {
    "case_insensitive_name_filter": ("name_filter_case_sensitive", False),
    "no_ratelimit_headers": ("rate_limit_headers", False),
    "version_definition_id": ("version_definition_id", True),
    "put_settings": ("put_settings", True),
    "no_versions_list": ("versions_list", False),
    "no_rewrite_file_refs": ("rewrite_file_refs", False),
    "schema_403": ("schema_access", "403"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="migrator fake-zuora",
        **described(
            "Serve the built-in fake Zuora Workflow API (not Zuora!) on 127.0.0.1 for demos"
            " and tests: several tenants, OAuth tokens, rate limits, idempotency and fault"
            " knobs, in the foreground until Ctrl-C. --write-config FILE writes a migrator"
            " config for it (secrets in 0600 files beside it). See docs/fake-zuora.md.",
            exits={
                0: "stopped by SIGINT or SIGTERM",
                2: "a bad config, or a port it cannot listen on",
            },
            example="migrator fake-zuora --tenants 2 --write-config demo.toml",
        ),
    )
    p.add_argument("--config", help="TOML or JSON file with [[tenants]] tables and knobs")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument(
        "--tenants",
        type=int,
        default=None,
        help="number of demo tenants tenant-1..N (default 3 without --config)",
    )
    p.add_argument("--seed", type=int, default=None, help="fault plan and demo credential seed")
    p.add_argument("--show-secrets", action="store_true", help="also print client secrets")
    p.add_argument(
        "--write-config",
        metavar="FILE",
        help="once listening, write a migrator config for these tenants to FILE "
        "(secrets in FILE.secrets/, mode 0600)",
    )
    p.add_argument("--state-file", help="persist state here on exit, load it on start")
    p.add_argument("--seed-file", help="JSON file of workflows to pre-load per tenant")
    p.add_argument(
        "--idempotent-replay",
        choices=["replay", "409"],
        help="a repeated Idempotency-Key: replay the first answer (default) or answer 409",
    )
    p.add_argument(
        "--no-rewrite-file-refs",
        action="store_true",
        help="do not rewrite Name__<taskId> file references on import",
    )
    p.add_argument(
        "--token-requests-per-minute-per-ip",
        type=int,
        help="OAuth token requests allowed per minute from one address (default 100)",
    )
    p.add_argument(
        "--variant",
        choices=list(VARIANTS),
        help="a named preset of the switches below (the flags given win over it)",
    )
    p.add_argument(
        "--import-response-id",
        choices=["definition", "version"],
        help="which id POST /workflows/import answers (§9.3)",
    )
    p.add_argument(
        "--name-filter",
        choices=["exact", "contains"],
        help="GET /workflows?name= matching (§9.10)",
    )
    p.add_argument(
        "--case-insensitive-name-filter",
        action="store_true",
        help="GET /workflows?name= ignores case (§9.10)",
    )
    p.add_argument(
        "--retry-after",
        choices=["always", "concurrency-only", "never"],
        help="which 429s carry Retry-After (§9.6)",
    )
    p.add_argument(
        "--no-ratelimit-headers", action="store_true", help="omit the RateLimit-* headers (§1.4)"
    )
    p.add_argument(
        "--error-bodies",
        choices=["sdk", "spec"],
        help="error body shapes: those the official SDK models declare (default), or the"
        " spec's table (§1.12)",
    )
    p.add_argument(
        "--listing-spelling",
        choices=["verisons", "versions", "both"],
        help="GET /workflows spells latest_inactive_verisons (default), _versions, or both (§3.1)",
    )
    p.add_argument(
        "--version-definition-id",
        action="store_true",
        help="version objects carry definitionId (§3.1 [O])",
    )
    p.add_argument(
        "--import-answer",
        choices=["documented", "created-object"],
        help="import answers the reference's object, or the created version's (§3.6 [O])",
    )
    p.add_argument(
        "--camel-case-triggers",
        choices=["dropped", "kept"],
        help="camelCase trigger keys in an import's workflow are dropped or read (§9.13)",
    )
    p.add_argument(
        "--put-settings", action="store_true", help="serve PUT /workflows/{id} (§3.6 [O])"
    )
    p.add_argument(
        "--no-versions-list",
        action="store_true",
        help="GET /workflows/{id}/versions answers 404",
    )
    p.add_argument(
        "--export-without-active",
        choices=["latest", "404"],
        help="export with no version= of a definition without an active version",
    )
    block = p.add_mutually_exclusive_group()
    block.add_argument(
        "--export-workflow-definition",
        action="store_true",
        help="export returns the workflow_definition block (§3.5 [O]; the default)",
    )
    block.add_argument(
        "--no-export-workflow-definition",
        action="store_true",
        help="export leaves the workflow_definition block out (the old shape)",
    )
    unknown = p.add_mutually_exclusive_group()
    unknown.add_argument(
        "--keep-unknown-keys",
        action="store_true",
        help="import stores keys Zuora drops (against §3.6; the 'keeps-unknown-keys' variant)",
    )
    unknown.add_argument(
        "--drop-unknown-keys",
        action="store_true",
        help="import drops the keys Zuora drops (§3.6; the default)",
    )
    p.add_argument(
        "--run-seconds",
        type=float,
        help="seconds a workflow run stays Processing before it is Finished (default 0.5)",
    )
    p.add_argument(
        "--failing-run",
        action="append",
        dest="failing_runs",
        metavar="NAME",
        help="runs of this workflow finish with an error task, on every tenant (repeatable)",
    )
    p.add_argument(
        "--reject-import",
        action="append",
        dest="reject_imports",
        metavar="NAME",
        help="imports of this workflow get a 400, on every tenant (repeatable)",
    )
    p.add_argument(
        "--custom-field",
        action="append",
        dest="custom_fields",
        metavar="OBJECT.FIELD",
        help="describe lists this custom field (Account.Region__c), on every tenant (repeatable)",
    )
    p.add_argument(
        "--custom-object",
        action="append",
        dest="custom_objects",
        metavar="NAME",
        help="the custom object definitions list this object (vehicle), on every tenant (repeatable)",
    )
    p.add_argument(
        "--schema-403",
        action="store_true",
        help="describe and custom object definitions answer 403 (the 'no-schema-permission' variant)",
    )
    for name, typ in _TENANT_FLAGS.items():
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=typ,
            metavar="N" if typ is int else "X",
            help=_TENANT_HELP[name] + " (every tenant)",
        )
    return p


def build_config(args: argparse.Namespace) -> FakeConfig:
    """Config file (or demo tenants), then flags on top."""
    seed = args.seed if args.seed is not None else 0
    if args.config:
        config = load_config(args.config)
        if args.seed is not None:
            config = replace(config, seed=seed)
        if args.tenants:
            raise MigratorError("--tenants and --config cannot be combined")
    else:
        config = FakeConfig.demo(args.tenants or 3, seed=seed)
    if args.variant:
        config = config.with_variant(args.variant)
    top: dict[str, Any] = {
        name: getattr(args, name) for name in _VALUE_FLAGS if getattr(args, name) is not None
    }
    top |= {field: value for flag, (field, value) in _SWITCHES.items() if getattr(args, flag)}
    if args.export_workflow_definition or args.no_export_workflow_definition:
        top["export_workflow_definition"] = bool(args.export_workflow_definition)
    if args.keep_unknown_keys or args.drop_unknown_keys:
        top["keep_unknown_keys"] = bool(args.keep_unknown_keys)
    if top:
        try:
            config = replace(config, **top)
        except ValueError as exc:
            raise MigratorError(str(exc)) from None
    knobs = {k: getattr(args, k) for k in _TENANT_FLAGS if getattr(args, k) is not None}
    for name in ("failing_runs", "reject_imports", "custom_objects"):
        if getattr(args, name):
            knobs[name] = tuple(getattr(args, name))
    if args.custom_fields:
        fields: dict[str, list[str]] = {}
        for spec in args.custom_fields:
            obj, dot, name = spec.partition(".")
            if not dot or not obj or not name:
                raise MigratorError(f"--custom-field {spec!r}: expected OBJECT.FIELD")
            fields.setdefault(obj, []).append(name)
        knobs["custom_fields"] = fields
    return with_tenant_knobs(config, **knobs) if knobs else config


async def _run(
    config: FakeConfig, host: str, port: int, show_secrets: bool, write_config: str | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with serve(config, host=host, port=port) as fake:
        print(f"listening on {fake.base_url}", flush=True)
        for t in config.tenants:
            secret = f" client_secret={t.client_secret}" if show_secrets else ""
            print(f"tenant {t.name} client_id={t.client_id}{secret}", flush=True)
        if write_config:
            try:
                secrets = write_client_config(write_config, fake.base_url, config.tenants)
            except OSError as exc:
                raise MigratorError(
                    f"--write-config {write_config}: cannot write it: {exc.strerror}"
                ) from None
            hint = shlex.join([*how_to_run_migrator(), "plan", "SOURCE", "--config", write_config])
            print(f"wrote {write_config} (secrets in {secrets}/); try: {hint}", flush=True)
        await stop.wait()


def main(argv: list[str]) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 2 on a usage or config error."""
    args = _parser().parse_args(argv)
    try:
        config = build_config(args)
        asyncio.run(_run(config, args.host, args.port, args.show_secrets, args.write_config))
    except MigratorError as exc:
        print(f"migrator fake-zuora: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"migrator fake-zuora: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        pass
    return 0
