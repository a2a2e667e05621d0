"""Reading what a tenant's data model holds, for the reference check (docs/references.md).

One `GET /v1/describe/{Object}` per standard object whose custom fields the sources name, one
`GET /objects/definitions/default` when they name a custom object; answers kept in the cache.
A cached answer is trusted to say what a tenant has, never what it lacks: when it does not list
something the sources name (a custom object's field included), the tenant is asked again (once
per run) before anything is blocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from migrator.core.errors import AuthError, ZuoraError
from migrator.core.references import (
    Reference,
    TenantSchema,
    is_custom_object,
    judge,
    needed,
    parse_custom_objects,
    parse_describe,
)
from migrator.store.cache import CUSTOM_OBJECTS, TenantCache
from migrator.zuora import ZuoraClient


async def read_schema(
    client: ZuoraClient, refs: Callable[[], Iterable[Reference]], cache: TenantCache | None
) -> TenantSchema:
    """What the tenant says of every object `refs` need checked: at most one request each,
    none for what the cache shows the tenant has. A cached answer that lacks something the
    sources name is not believed: that object (or the listing) is asked again before the check.
    `refs` streams the references (twice at most: they are never all in memory)."""
    objects, customs = needed(refs())
    described: dict[str, frozenset[str] | str] = {}
    cached_names: set[str] = set()
    for obj in sorted(objects):
        cached = cache.schema(obj) if cache is not None else None
        if isinstance(cached, list):
            described[obj] = frozenset(str(f) for f in cached)
            cached_names.add(obj)
        else:
            described[obj] = await _describe(client, obj, cache)
    found: Mapping[str, frozenset[str]] | str | None = None
    if customs:
        cached = cache.schema(CUSTOM_OBJECTS) if cache is not None else None
        if isinstance(cached, dict):
            found = {str(k): frozenset(map(str, v)) for k, v in cached.items()}
            cached_names.add(CUSTOM_OBJECTS)
        else:
            found = await _custom_objects(client, cache)
    schema = TenantSchema(objects=described, custom_objects=found)
    if not cached_names:
        return schema
    stale: set[str] = set()
    for finding in judge(refs(), schema):
        if finding.status == "missing" and finding.ref.object is not None:
            custom = is_custom_object(finding.ref.object)
            stale.add(CUSTOM_OBJECTS if custom else finding.ref.object)
    for name in sorted(stale & cached_names):
        if name == CUSTOM_OBJECTS:
            found = await _custom_objects(client, cache)
        else:
            described[name] = await _describe(client, name, cache)
    return TenantSchema(objects=described, custom_objects=found)


async def _describe(
    client: ZuoraClient, obj: str, cache: TenantCache | None
) -> frozenset[str] | str:
    try:
        fields = parse_describe(await client.describe_object(obj))
    except AuthError:
        raise
    except ZuoraError as exc:
        return _unreadable(f"describe {obj}", exc)
    except ValueError as exc:
        return f"describe {obj}: {exc}"
    if cache is not None:
        cache.put_schema(obj, sorted(fields))
    return fields


async def _custom_objects(
    client: ZuoraClient, cache: TenantCache | None
) -> Mapping[str, frozenset[str]] | str:
    try:
        found = parse_custom_objects(await client.custom_object_definitions())
    except AuthError:
        raise
    except ZuoraError as exc:
        return _unreadable("custom object definitions", exc)
    except ValueError as exc:
        return f"custom object definitions: {exc}"
    if cache is not None:
        cache.put_schema(CUSTOM_OBJECTS, {k: sorted(v) for k, v in found.items()})
    return found


def _unreadable(what: str, exc: ZuoraError) -> str:
    if exc.status == 403:
        return f"{what}: no permission (403)"
    if exc.status == 404:
        return f"{what}: not found (404)"
    return f"{what}: could not be read ({exc})"
