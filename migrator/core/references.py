"""What a workflow's tasks name in a tenant's data model, and whether a tenant has it (pure).

`find_references` reads one export: objects and fields in task `fields` maps, task `object`s,
ZOQL `where_clause`s and Liquid `Data.…` expressions, each with its task and JSON path.
`check` compares them with a `TenantSchema` (what `GET /v1/describe/{Object}` and
`GET /objects/definitions/default` answered). Only custom fields (`…__c`) and custom objects
(`default__<name>`) can be missing; a name the tables below do not know is *not checked*.
See docs/references.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from xml.etree import ElementTree

import orjson


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Zuora's API object names (developer.zuora.com, "API object names for Describe").
STANDARD_OBJECTS = _words(
    """Account AccountingCode AccountingPeriod Amendment ApplicationGroup BillingRun
    BillingPreviewRun ConfigurationTemplates Contact ContactSnapshot CreditBalanceAdjustment
    CreditMemo CreditMemoApplication CreditMemoApplicationItem CreditMemoItem CreditMemoPart
    CreditMemoPartItem CreditTaxationItem FXCustomRate DebitMemo DebitMemoItem DebitTaxationItem
    DiscountAppliedMetrics Tenant Fulfillment Feature PaymentGatewayReconciliationEventLog
    PaymentReconciliationJob PaymentReconciliationLog Invoice InvoiceAdjustment InvoiceItem
    InvoiceItemAdjustment InvoicePayment InvoiceSchedule InvoiceScheduleItem JournalEntry
    JournalEntryItem JournalRun CalloutHistory EmailHistory Order OrderAction OrderElp
    OrderLineItems OrderItem OrderMrr OrderQuantity OrderTcb OrderTcv Payment PaymentApplication
    PaymentApplicationItem PaymentMethod PaymentMethodSnapshot PaymentMethodTransactionLog
    UpdaterDetail PaymentPart PaymentPartItem PaymentRun PaymentTransactionLog ProcessedUsage
    Product ProductChargeDefinition ProductFeature ProductRatePlan ProductRatePlanDefinition
    ProductRatePlanCharge ProductRatePlanChargeTier RatePlan RatePlanCharge RatePlanChargeTier
    Refund RefundApplication RefundApplicationItem RefundInvoicePayment RefundPart RefundPartItem
    RefundTransactionLog RevenueChargeSummary RevenueChargeSummaryItem RevenueEvent
    RevenueEventCreditMemoItem RevenueEventDebitMemoItem RevenueEventInvoiceItem
    RevenueEventInvoiceItemAdjustment RevenueEventItem RevenueEventItemCreditMemoItem
    RevenueEventItemDebitMemoItem RevenueEventItemInvoiceItem RevenueEventItemInvoiceItemAdjustment
    RevenueEventType RevenueSchedule RevenueScheduleCreditMemoItem RevenueScheduleDebitMemoItem
    RevenueScheduleInvoiceItem RevenueScheduleInvoiceItemAdjustment RevenueScheduleItem
    RevenueScheduleItemCreditMemoItem RevenueScheduleItemDebitMemoItem
    RevenueScheduleItemInvoiceItem RevenueScheduleItemInvoiceItemAdjustment Subscription
    SubscriptionProductFeature TaxableItemSnapshot TaxationItem UpdaterBatch Usage"""
)

# The joined objects of data source exports, by the name a query gives them → the API object.
ALIASES: Mapping[str, str] = {
    "BillToContact": "Contact",
    "SoldToContact": "Contact",
    "ShipToContact": "Contact",
    "DefaultPaymentMethod": "PaymentMethod",
    "ParentAccount": "Account",
    "SubscriptionVersionAmendment": "Amendment",
    "BillToContactSnapshot": "ContactSnapshot",
    "SoldToContactSnapshot": "ContactSnapshot",
    "ShipToContactSnapshot": "ContactSnapshot",
}

CUSTOM_OBJECT_PREFIX = "default__"
_BY_LOWER = {n.lower(): n for n in STANDARD_OBJECTS} | {a.lower(): o for a, o in ALIASES.items()}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LIQUID = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_DATA_PATH = re.compile(r"(?<![\w.])Data((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
_ZOQL_NAME = re.compile(
    r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?(?![\w.(])"
)
_RELEVANT = re.compile(rb"__c\b|default__", re.IGNORECASE)


def _names_custom(value: Any) -> bool:
    """Whether a JSON value may name a custom field or object: its serialised bytes scanned
    (literal scans first: fast); a value orjson cannot write is read the slow way."""
    try:
        raw = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return True
    low = raw.lower()
    if b"__c" in low or b"default__" in low:
        return _RELEVANT.search(raw) is not None
    return False


_ZOQL_WORDS = _words(
    """and or not null is like in between limit order by asc desc true false select from where
    group having distinct as on"""
)


def is_custom_field(name: str | None) -> bool:
    return name is not None and name.lower().endswith("__c") and len(name) > 3


def resolve_object(name: str) -> str | None:
    """The API object a name means: itself, its alias's object, a `default__x` custom object;
    None for a name the tables do not know (then nothing about it is checked)."""
    if name.lower().startswith(CUSTOM_OBJECT_PREFIX) and len(name) > len(CUSTOM_OBJECT_PREFIX):
        return CUSTOM_OBJECT_PREFIX + name[len(CUSTOM_OBJECT_PREFIX) :]
    return _BY_LOWER.get(name.lower())


def is_custom_object(name: str | None) -> bool:
    return name is not None and name.startswith(CUSTOM_OBJECT_PREFIX)


@dataclass(frozen=True, slots=True)
class Reference:
    """One object (field None) or field a task names, where it names it."""

    task: str  # the task's name ("task 3" when it has none)
    path: str  # JSON path of the value or key that names it
    named: str  # the object as written: "Account", "BillToContact", "default__vehicle"
    field: str | None
    object: str | None  # the API object it resolves to; None when unknown

    @property
    def written(self) -> str:
        return self.named if self.field is None else f"{self.named}.{self.field}"

    @property
    def relevant(self) -> bool:
        """True when a tenant could lack it: a custom field, or a custom object."""
        return is_custom_field(self.field) or is_custom_object(self.object)

    def row(self) -> list[str | None]:
        return [self.task, self.path, self.named, self.field, self.object]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Reference:
        task, path, named, field, obj = row
        return cls(str(task), str(path), str(named), field, obj)


def _key_path(base: str, key: str) -> str:
    return f"{base}.{key}" if _IDENT.match(key) else f"{base}[{_quote(key)}]"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ref(task: str, path: str, named: str, field: str | None = None) -> Reference:
    return Reference(task, path, named, field, resolve_object(named))


def find_references(data: Mapping[str, Any], *, relevant: bool = False) -> list[Reference]:
    """Every object and field the document's tasks name, in task order, each where it is named.
    `relevant`: only the tasks whose text names a custom field or object are read (the others
    cannot name anything a tenant could lack; one scan of a task's serialised bytes says so)."""
    tasks = data.get("tasks")
    out: list[Reference] = []
    if not isinstance(tasks, list):
        return out
    for i, task in enumerate(tasks):
        if isinstance(task, dict):
            if relevant and not _names_custom(task):
                continue
            out.extend(_task_references(task, f"$.tasks[{i}]"))
    return out


def _task_references(task: Mapping[str, Any], base: str) -> Iterator[Reference]:
    name = task.get("name")
    label = name if isinstance(name, str) and name.strip() else f"task {task.get('id')}"
    obj = task.get("object")
    own: str | None = obj if isinstance(obj, str) and _IDENT.match(obj) else None
    if own is not None:
        yield _ref(label, f"{base}.object", own)
    params = task.get("parameters")
    if isinstance(params, dict):
        fields = params.get("fields")
        if isinstance(fields, dict):
            where = f"{base}.parameters.fields"
            for named, chosen in fields.items():
                if not isinstance(named, str) or not _IDENT.match(named):
                    continue
                at = _key_path(where, named)
                yield _ref(label, at, named)
                if isinstance(chosen, dict):
                    for field in chosen:
                        if isinstance(field, str) and _IDENT.match(field):
                            yield _ref(label, _key_path(at, field), named, field)
        clause = params.get("where_clause")
        if isinstance(clause, str):
            yield from _zoql(clause, own, label, f"{base}.parameters.where_clause")
    for path, text in _strings(task, base):
        yield from _liquid(text, label, path)


def _zoql(clause: str, own: str | None, task: str, path: str) -> Iterator[Reference]:
    """Names in a ZOQL condition: `Object.Field`, or `Field` of the task's own object."""
    text = _QUOTED.sub(" ", _LIQUID.sub(" ", clause))
    for match in _ZOQL_NAME.finditer(text):
        first, second = match.group(1), match.group(2)
        if second is not None:
            yield _ref(task, path, first, second)
        elif first.lower() not in _ZOQL_WORDS:
            if own is not None:
                yield _ref(task, path, own, first)
            else:
                yield Reference(task, path, "?", first, None)


def _liquid(text: str, task: str, path: str) -> Iterator[Reference]:
    """`Data.Object.Field` (and `Data.Object.Join.Field`) inside `{{ … }}` and `{% … %}`."""
    if "{" not in text or "Data" not in text:
        return
    for block in _LIQUID.findall(text):
        for match in _DATA_PATH.finditer(_QUOTED.sub(" ", block)):
            parts = match.group(1)[1:].split(".")
            if len(parts) == 1:
                yield _ref(task, path, parts[0])
            else:
                yield _ref(task, path, parts[-2], parts[-1])


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string under `value` that may hold a Liquid `Data` path, with its JSON path
    (iteratively: documents are deep; a path is only spelled out for the strings returned)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if "Data" in item and "{" in item:
                yield _spell(path, at), item
        elif isinstance(item, dict):
            stack.extend((v, (*at, str(k))) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, (*at, n)) for n, v in reversed(list(enumerate(item))))


def _spell(base: str, parts: tuple[Any, ...]) -> str:
    for part in parts:
        base = f"{base}[{part}]" if isinstance(part, int) else _key_path(base, part)
    return base


def relevant_references(data: Mapping[str, Any]) -> list[Reference]:
    """The references a tenant could lack (custom fields, custom objects), each once per
    (task, name): what the run keeps per document. Most tasks name none: one scan of their
    serialised bytes says so without walking them."""
    seen: set[tuple[str, str]] = set()
    out: list[Reference] = []
    if not _names_custom(data):
        return out
    for ref in find_references(data, relevant=True):
        if ref.relevant and (ref.task, ref.written) not in seen:
            seen.add((ref.task, ref.written))
            out.append(ref)
    return out


# --- a tenant's schema ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TenantSchema:
    """What a tenant told of its data model. A field set holds lower-cased names; a string in
    place of one says why it could not be read (then nothing depending on it is checked)."""

    objects: Mapping[str, frozenset[str] | str]  # API object → its fields
    custom_objects: Mapping[str, frozenset[str]] | str | None = None  # lower name → its fields


NO_CUSTOM_OBJECT = "no such custom object"


@dataclass(frozen=True, slots=True)
class Finding:
    ref: Reference
    status: Literal["present", "missing", "not checked"]
    why: str = ""

    def line(self, tenant: str) -> str:
        """One line naming the task and the reference (what a blocked item's reason says)."""
        ref = self.ref
        if is_custom_object(ref.object) and (ref.field is None or self.why == NO_CUSTOM_OBJECT):
            what = f"custom object {ref.object}"
        else:
            what = ref.written
            if ref.object is not None and ref.object != ref.named:  # an export join alias
                what += f" ({ref.object}.{ref.field})"
        if self.status == "missing":
            return f"task {ref.task!r} names {what}, which tenant {tenant} does not have (at {ref.path})"
        return f"task {ref.task!r} names {what}: not checked ({self.why})"


def needed(refs: Iterable[Reference]) -> tuple[dict[str, set[str]], set[str]]:
    """What to ask a tenant: per standard object the custom fields named (lower-cased; each
    object is one describe), and the custom objects named (lower-cased, without `default__`;
    any at all is one definitions listing)."""
    objects: dict[str, set[str]] = {}
    customs: set[str] = set()
    for ref in refs:
        if is_custom_object(ref.object):
            assert ref.object is not None
            customs.add(ref.object[len(CUSTOM_OBJECT_PREFIX) :].lower())
        elif ref.object is not None and is_custom_field(ref.field):
            assert ref.field is not None
            objects.setdefault(ref.object, set()).add(ref.field.lower())
    return objects, customs


def check(refs: Iterable[Reference], schema: TenantSchema) -> list[Finding]:
    """Each relevant reference judged against the tenant's schema."""
    return list(judge(refs, schema))


def judge(refs: Iterable[Reference], schema: TenantSchema) -> Iterator[Finding]:
    """`check`, one finding at a time (a run's references are streamed, never all in memory)."""
    for ref in refs:
        if not ref.relevant:
            continue
        if ref.object is None:
            yield Finding(ref, "not checked", f"{ref.named!r} is not an object migrator knows")
            continue
        if is_custom_object(ref.object):
            yield _custom(ref, schema.custom_objects)
            continue
        assert ref.field is not None
        fields = schema.objects.get(ref.object)
        if fields is None:
            yield Finding(ref, "not checked", f"{ref.object} was not described")
        elif isinstance(fields, str):
            yield Finding(ref, "not checked", fields)
        elif ref.field.lower() in fields:
            yield Finding(ref, "present")
        else:
            yield Finding(ref, "missing", f"{ref.object} has no field {ref.field}")


def _custom(ref: Reference, known: Mapping[str, frozenset[str]] | str | None) -> Finding:
    if known is None:
        return Finding(ref, "not checked", "custom object definitions were not read")
    if isinstance(known, str):
        return Finding(ref, "not checked", known)
    assert ref.object is not None
    props = known.get(ref.object[len(CUSTOM_OBJECT_PREFIX) :].lower())
    if props is None:
        return Finding(ref, "missing", NO_CUSTOM_OBJECT)
    if (
        ref.field is not None
        and is_custom_field(ref.field)
        and props
        and ref.field.lower() not in props
    ):
        return Finding(ref, "missing", f"{ref.object} has no field {ref.field}")
    return Finding(ref, "present")


def missing_lines(findings: Iterable[Finding], tenant: str) -> list[str]:
    """One line per missing (task, reference): a task naming a missing custom object in three
    places is one line, at the first place."""
    seen: set[tuple[str, str]] = set()
    out: list[str] = []
    for f in findings:
        if f.status != "missing":
            continue
        custom_object = is_custom_object(f.ref.object) and f.why == NO_CUSTOM_OBJECT
        what = str(f.ref.object) if custom_object else f.ref.written
        if (f.ref.task, what) not in seen:
            seen.add((f.ref.task, what))
            out.append(f.line(tenant))
    return out


# --- reading what a tenant answered -----------------------------------------------------------

_FORBIDDEN_XML = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_describe(raw: bytes) -> frozenset[str]:
    """The field names (lower-cased) of a `GET /v1/describe/{Object}` answer.

    A document with a DOCTYPE or an entity declaration is refused (ValueError) before it is
    parsed: no entity is ever expanded."""
    if _FORBIDDEN_XML.search(raw):
        raise ValueError("the describe answer declares a DOCTYPE or entities; refused")
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise ValueError(f"the describe answer is not XML: {exc}") from None
    names = set()
    for field in root.iter("field"):
        name = field.find("name")
        if name is not None and name.text and name.text.strip():
            names.add(name.text.strip().lower())
    if root.tag != "object" and not names:
        raise ValueError("the describe answer has no <object> with <fields>")
    return frozenset(names)


def parse_custom_objects(body: Any) -> dict[str, frozenset[str]]:
    """Custom object name (lower-cased) → its field names (lower-cased), from a
    `GET /objects/definitions/default` answer (`{"count": N, "definitions": {type: {…}}}`)."""
    definitions = body.get("definitions") if isinstance(body, dict) else None
    if not isinstance(definitions, dict):
        raise ValueError("the custom object definitions answer has no 'definitions' object")
    out: dict[str, frozenset[str]] = {}
    for key, definition in definitions.items():
        if not isinstance(definition, dict):
            continue
        name = definition.get("type")
        schema = definition.get("schema")
        props = schema.get("properties") if isinstance(schema, dict) else None
        fields = (
            frozenset(str(p).lower() for p in props) if isinstance(props, dict) else frozenset()
        )
        out[str(name if isinstance(name, str) and name else key).lower()] = fields
    return out
