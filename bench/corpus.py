"""Deterministic generator of synthetic Zuora Workflow export documents for benchmarks.
Same seed, same bytes: each document depends only on (seed, index), never on n."""

from __future__ import annotations

import gzip
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["generate", "write_corpus"]

_OBJECTS = ("Account", "Invoice", "Subscription", "Payment", "Usage", "CreditMemo", "Contact")
_FIELDS = ("Id", "Name", "Status", "Balance", "Amount", "DueDate", "AccountNumber", "Currency")
_TIMEZONES = ("UTC", "Pacific Time (US & Canada)", "Eastern Time (US & Canada)", "London", "Tokyo")
_EVENTS = ("InvoicePosted", "PaymentProcessed", "BillingRunCompletion", "AccountCreated")
_WORDS = (
    "invoice", "renewal", "usage", "credit", "payment", "dunning", "tax", "audit", "portal",
    "reminder", "sync", "export", "ledger", "refund", "quote", "notice", "archive", "digest",
)  # fmt: skip
_CASES = ("Case_1", "Case_2", "Case_3")
# The labels an outgoing edge of each branching task type may carry.
_LABELS: dict[str, tuple[str, ...]] = {
    "If": ("True", "False"),
    "Logic::Case": (*_CASES, "Case_Else"),
    "Iterate": ("For Each", "Complete"),
    "Approval": ("Approve", "Reject", "Timeout"),
}
_LEAF_TYPES = ("Email", "Callout", "Update", "Create", "Logic::JSONTransform", "Delay")
_INNER_TYPES = (*_LEAF_TYPES, "Query", "If", "Logic::Case", "Approval", "Export", "Iterate")


def _html(rng: random.Random, rows: int) -> str:
    """A CRLF HTML e-mail body with Liquid; about 230 bytes per row."""
    parts = [
        '<!DOCTYPE html>\r\n<html><head><meta charset="utf-8"></head><body>',
        "<p>Dear {{ Data.Account.Name | escape }},</p>\r\n<table>",
    ]
    for r in range(rows):
        word = rng.choice(_WORDS)
        parts.append(
            f'<tr class="r{r % 2}"><td>{word} {r}</td><td>{{{{ Data.Invoice.Amount | times: {rng.randint(1, 9)} }}}}</td>'
            f"<td>{{% if Data.Account.Currency == 'EUR' %}}€{{% else %}}${{% endif %}}"
            f"{rng.randint(10, 99999) / 100:.2f}</td></tr>"
        )
    parts.append("</table>\r\n<p>Thank you.</p></body></html>")
    return "\r\n".join(parts)


def _params(rng: random.Random, action: str, *, large_email: bool) -> dict[str, Any]:
    obj = rng.choice(_OBJECTS)
    if action in ("Query", "Export"):
        fields = {obj: {f: "true" for f in rng.sample(_FIELDS, 4)}}
        where = f"Status = '{rng.choice(('Active', 'Posted', 'Draft'))}'"
        if action == "Query":
            return {"fields": fields, "batch_size": "2000", "where_clause": where,
                    "zero_query_proceed": "false"}  # fmt: skip
        return {"fields": fields, "where_clause": where, "zip": "true", "encrypt": "false",
                "zero_result_stop": "false"}  # fmt: skip
    if action == "Iterate":
        return {"iteration_type": "Default", "file_type": "CSV", "chunk_size": "1",
                "strict_variables": "true"}  # fmt: skip
    if action == "If":
        return {"if_clause": "{% if Data.Invoice.Balance > 0 %}True{% else %}False{% endif %}",
                "strict_variables": "true"}  # fmt: skip
    if action == "Logic::Case":
        return {"case_clause": "{{ Data.Account.Currency }}",
                "case_condition": dict(zip(_CASES, ("USD", "EUR", "GBP"), strict=True)),
                "disable_regex": "true"}  # fmt: skip
    if action == "Approval":
        return {"subjectEmail": "Approve {{Data.Invoice.Id}}?", "emailBody": _html(rng, 2),
                "senderName": "Bench", "senderEmail": "bench@example.com",
                "delivery_method": "email", "email_approver_emails": ["approver@example.com"]}  # fmt: skip
    if action == "Email":
        rows = rng.randint(12000, 18000) if large_email else rng.randint(1, 6)
        return {"email": {"cc": [], "to": ["{{Data.Account.BillToContact.WorkEmail}}"], "bcc": [],
                          "from": "", "name": "", "subject": f"{rng.choice(_WORDS).title()} notice",
                          "reply_to": "", "template": _html(rng, rows), "preview_only": "false"},
                "files": {}}  # fmt: skip
    if action == "Callout":
        return {"url": f"https://hooks.example.com/{rng.choice(_WORDS)}", "method": "POST",
                "body_type": "raw", "raw_body": '{"id": "{{Data.Account.Id}}"}',
                "headers": [{"key": "Content-Type", "value": "application/json"}],
                "authorization": {"type": "none"}, "validation": {"status_codes": ["200"]},
                "retry_rules": {"retry_count": "3", "retry_window": "30"}}  # fmt: skip
    if action in ("Update", "Create"):
        return {"fields": {obj: {"Description__c": f"bench {rng.randint(0, 10**6)}"}}}
    if action == "Logic::JSONTransform":
        return {"jsonata": '{"n": $count(Data.Account)}', "strict_variables": "false"}
    if action == "Delay":
        return {"delay": str(rng.randint(60, 86400)), "delay_unit": "seconds"}
    return {}


def _document(seed: int, index: int, tasks: tuple[int, int], large: bool, name: str,
              version: str) -> dict[str, Any]:  # fmt: skip
    rng = random.Random(f"migrator-bench:{seed}:{index}")
    count = rng.randint(140, 160) if large else rng.randint(*tasks)
    ids = rng.sample(range(1_000, 9_000_000), count)
    workflow_id = 10_000_000 + seed % 1000 * 100_000 + index
    big_emails = set(rng.sample(range(1, count), min(2, count - 1))) if large else set()

    kinds: list[str] = [rng.choice(("Export", "Query"))]
    for i in range(1, count):
        kinds.append("Email" if i in big_emails else rng.choice(_INNER_TYPES))
    records: list[dict[str, Any]] = []
    linkages: list[dict[str, Any]] = []
    event = rng.random() < 0.3
    entry_label = rng.choice(_EVENTS) if event else "Start"
    linkages.append({"source_workflow_id": workflow_id, "source_task_id": None,
                     "target_task_id": ids[0], "linkage_type": entry_label})  # fmt: skip
    for i, action in enumerate(kinds):
        parent: int | None = None
        if i > 0:
            parent = rng.randrange(max(0, i - 6), i)  # mostly local fan-out, bounded depth
            label = rng.choice(_LABELS.get(kinds[parent], ("Success", "Success", "Failure")))
            linkages.append({"source_workflow_id": None, "source_task_id": ids[parent],
                             "target_task_id": ids[i], "linkage_type": label})  # fmt: skip
        obj: str | None = None
        if action in ("Query", "Export", "Update", "Create"):
            obj = rng.choice(_OBJECTS)
        elif action == "Iterate":
            producers = [j for j in range(i) if kinds[j] == "Export"]
            obj = (
                f"{rng.choice(_OBJECTS)}__{ids[rng.choice(producers)]}.csv.zip"
                if producers
                else "Account"
            )
        records.append({
            "id": ids[i], "name": f"{action.split('::')[-1]} {rng.choice(_WORDS)} {i}",
            "parameters": _params(rng, action, large_email=i in big_emails),
            "action_type": action, "object": obj,
            "object_id": "{{Data.Account.Id}}" if action == "Update" else None,
            "call_type": "REST" if action in ("Update", "Create", "Callout") else "SOAP",
            "task_id": None if parent is None else ids[parent],
            "css": {"top": f"{40 + 120 * (i % 8)}px", "left": f"{35 + 300 * (i // 8)}px"},
            "concurrent_limit": 9999999, "tags": [], "priority": "Medium", "assignment": [],
        })  # fmt: skip
    scheduled = not event and rng.random() < 0.4
    params: dict[str, Any] = {"fields": []}
    if event:
        params["event_triggers"] = [entry_label]
    workflow = {
        "id": workflow_id, "name": name, "description": f"Synthetic benchmark workflow {index}.",
        "parameters": params, "data": {}, "type": "Workflow::Setup",
        "ondemand_trigger": not event, "callout_trigger": False, "scheduled_trigger": scheduled,
        "interval": f"0 {rng.randint(0, 59)} {rng.randint(0, 23)} * * *" if scheduled else None,
        "timezone": rng.choice(_TIMEZONES) if scheduled else None,
        "status": None, "css": {"top": "40px", "left": "35px"}, "notifications": {},
        "call_type": "BATCH", "priority": "Medium", "delete_ttl": 30, "task_summary": {},
        "version": version,
    }  # fmt: skip
    if event:
        workflow["event_trigger"] = True
    rng.shuffle(records)  # export order carries no meaning
    return {"workflow": workflow, "tasks": records, "linkages": linkages}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def generate(
    n: int,
    *,
    tasks: tuple[int, int] = (3, 12),
    large: bool = False,
    seed: int = 0,
    versions_per_name: int = 1,
) -> Iterator[tuple[str, bytes]]:
    """Yield n (file name, JSON bytes) export documents, deterministically for a given seed.

    Names are distinct, unless versions_per_name > 1: then consecutive groups of that many
    documents share one workflow name with ascending versions "1.0.0", "1.1.0", ...
    large=True gives ~150-task documents carrying two multi-MB HTML e-mail templates.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    low, high = tasks
    if not 1 <= low <= high:
        raise ValueError("tasks must be (low, high) with 1 <= low <= high")
    if versions_per_name < 1:
        raise ValueError("versions_per_name must be >= 1")
    for index in range(n):
        group, minor = divmod(index, versions_per_name)
        words = random.Random(f"migrator-bench-name:{seed}:{group}").sample(_WORDS, 2)
        name = f"Bench {seed}-{group:05d} {words[0].title()} {words[1].title()}"
        doc = _document(seed, index, (low, high), large, name, f"1.{minor}.0")
        file_name = f"{index:05d}-{_slug(name)}-v1-{minor}.json"
        yield file_name, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def write_corpus(
    directory: str | Path,
    n: int,
    *,
    compress: bool = False,
    tasks: tuple[int, int] = (3, 12),
    large: bool = False,
    seed: int = 0,
    versions_per_name: int = 1,
) -> list[Path]:
    """Write generate(n, ...) into directory (created if needed); .json.gz when compress is set."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for file_name, raw in generate(
        n, tasks=tasks, large=large, seed=seed, versions_per_name=versions_per_name
    ):
        if compress:
            path = out / f"{file_name}.gz"
            path.write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))
        else:
            path = out / file_name
            path.write_bytes(raw)
        written.append(path)
    return written
