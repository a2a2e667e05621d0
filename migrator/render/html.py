"""The drift matrix as one self-contained HTML page: cells coloured by status, filterable by
tenant and status, each drifted cell opening its differences and both task graphs as inline SVG.

Pure: returns the page as text. Nothing is loaded from elsewhere (the page is read from mail
attachments and CI artifacts), and every name is escaped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from html import escape

from migrator.core.diff import summarize_differences
from migrator.core.drift import (
    DRIFTED,
    EXTRA,
    FAILED,
    IN_SYNC,
    MISSING,
    STATUSES,
    DriftReport,
    WorkflowDrift,
)
from migrator.core.logs import printable
from migrator.core.workflow_graph import ADDED, CHANGED, REMOVED, TaskGraph
from migrator.render.terminal import ELLIPSIS, SYMBOLS

# One letter per status keeps the 10,000 cells of 50 tenants by 200 workflows small.
CELL_CLASS = {IN_SYNC: "i", DRIFTED: "d", MISSING: "m", EXTRA: "e", FAILED: "f"}

_NODE_W = 150
_NODE_H = 28
_GAP_X = 18
_GAP_Y = 52
_TOP = 40
_LABEL_CHARS = 22

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#212529}
h1{font-size:1.3em;margin:0 0 .3em}
h2{font-size:1.1em;margin:1.2em 0 .4em}
.meta,.legend,.hint{color:#495057}
#filters{margin:.8em 0;display:flex;gap:1em;flex-wrap:wrap;align-items:center}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse}
th,td{border:1px solid #dee2e6;padding:1px 6px;text-align:center;min-width:1.2em}
tbody th{text-align:left;font-weight:normal;max-width:28em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;position:sticky;left:0;background:#fff}
thead th{font-weight:normal;font-size:.85em;max-width:9em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.i{background:#d3f9d8}td.i::after{content:"="}
.d{background:#ffe066}.d a{color:inherit;text-decoration:none;display:block}
.m{background:#ffc9c9}td.m::after{content:"-"}
.e{background:#d0ebff}td.e::after{content:"+"}
.f{background:#ced4da}td.f::after{content:"!"}
.legend span{padding:0 .5em;margin-right:.5em}
.hint span{padding:0 .3em}
details{margin:.6em 0;border:1px solid #dee2e6;padding:.3em .6em}
summary{cursor:pointer;overflow-wrap:anywhere}
ul.diffs{font-family:ui-monospace,monospace;font-size:.9em;overflow-wrap:anywhere}
figure{margin:.5em 0;overflow-x:auto;max-width:100%}
figcaption{font-weight:bold}
svg text{font:11px system-ui,sans-serif}
svg text.l{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
ul.failures li{overflow-wrap:anywhere}
@media print{
#filters{display:none}
details{break-inside:avoid-page;border:0;padding:0}
figure{overflow:visible}
svg{max-width:100%;height:auto}
.scroll{overflow:visible}
}
"""

# Filter by tenant (hide the other columns) and by status (hide rows with no shown cell of a
# checked status; the drifted and failed lists follow both), hide a group the filters empty,
# give every cell a tooltip (where it is, its status, the reason: read from the element that
# shows the reason, so the text is on the page once), open every drift's details for printing,
# and open a drifted pair's details when its cell is followed.
_SCRIPT = """
(function(){
var ft=document.getElementById('ft'),boxes=document.querySelectorAll('#fs input');
var words=__WORDS__;
function apply(){
 var t=ft.value,on={},rows=0;
 boxes.forEach(function(b){if(b.checked)on[b.value]=1;});
 document.querySelectorAll('#matrix tr').forEach(function(r){
  var show=false;
  for(var i=1;i<r.children.length;i++){
   var c=r.children[i],vis=!t||t==String(i);
   c.hidden=!vis;
   if(vis&&on[c.className])show=true;
  }
  if(r.parentNode.tagName=='TBODY'){r.hidden=!show;if(show)rows++;}
 });
 document.getElementById('none').hidden=rows>0;
 document.querySelectorAll('[data-t]').forEach(function(d){
  d.hidden=(!!t&&d.getAttribute('data-t')!=t)||!on[d.getAttribute('data-s')];
 });
 document.querySelectorAll('.group').forEach(function(g){
  g.hidden=!g.querySelector('[data-t]:not([hidden])');
 });
}
function tips(){
 var heads=document.querySelectorAll('#matrix thead th');
 document.querySelectorAll('#matrix tbody tr').forEach(function(r){
  var name=r.children[0].textContent;
  for(var i=1;i<r.children.length;i++){
   var c=r.children[i],w=words[c.className];
   if(!w)continue;
   var tip=name+' on '+heads[i].textContent+': '+w,why=c.getAttribute('data-r');
   if(why!==null){var e=document.getElementById('r'+why);if(e)tip+=': '+e.textContent;}
   c.title=tip;
  }
 });
}
function openHash(){
 var d=document.getElementById(location.hash.slice(1));
 if(d&&d.tagName=='DETAILS')d.open=true;
}
window.addEventListener('beforeprint',function(){
 document.querySelectorAll('details:not([open])').forEach(function(d){
  d.open=true;d.setAttribute('data-print','');
 });
});
window.addEventListener('afterprint',function(){
 document.querySelectorAll('details[data-print]').forEach(function(d){
  d.open=false;d.removeAttribute('data-print');
 });
});
ft.addEventListener('change',apply);
boxes.forEach(function(b){b.addEventListener('change',apply);});
window.addEventListener('hashchange',openHash);
tips();
apply();
openHash();
document.documentElement.setAttribute('data-ready','1');
})();
"""


def _text(value: str) -> str:
    return escape(printable(value), quote=True)


def render_html(report: DriftReport, *, title: str = "Workflow drift", generated: str = "") -> str:
    """The whole page. `generated` (a timestamp, say) is shown as given: no clock is read here."""
    names = report.names()
    tenants = [t.tenant for t in report.tenants]
    counts = report.counts()
    reasons = _Reasons(report)
    parts = [
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>{_text(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_text(title)}</h1>",
        "<p class=meta>"
        + (f"{_text(generated)} · " if generated else "")
        + f"{len(names)} workflows · {len(tenants)} tenants · "
        + ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
        + "</p>",
    ]
    for failure in report.failed_sources:
        parts.append(
            f"<p class=failed>failed source {_text(failure.source)}: {_text(failure.reason)}</p>"
        )
    parts.append(_filters(tenants))
    drifted: list[tuple[int, str, WorkflowDrift]] = []
    parts.append(_matrix(report, names, drifted, reasons))
    parts.append("<p id=none hidden>No workflow matches the filters.</p>")
    parts.append(
        "<p class=legend>"
        + "".join(f"<span class={CELL_CLASS[s]}>{escape(SYMBOLS[s])} {s}</span>" for s in STATUSES)
        + "</p>"
    )
    if drifted:
        parts.append(
            "<section class=group id=drifted><h2>Drifted</h2><p class=hint>Each drift lists its "
            "differences, then the task graphs, the sources' above the tenant's: "
            f"<span style='background:{_NODE_STYLE[CHANGED][0]}'>changed</span> "
            f"<span style='background:{_NODE_STYLE[ADDED][0]}'>added</span> "
            f"<span style='background:{_NODE_STYLE[REMOVED][0]}'>removed</span> "
            "(a removed linkage is dashed). Hover a task or an arrow for its full name.</p>"
        )
        for n, (column, tenant, cell) in enumerate(drifted):
            parts.append(_drift_details(n, column, tenant, cell))
        parts.append("</section>")
    parts.append(_failures(reasons))
    parts.append(reasons.others())
    script = _SCRIPT.replace("__WORDS__", json.dumps({CELL_CLASS[s]: s for s in STATUSES}))
    parts.append(f"<script>{script}</script></body></html>\n")
    return "".join(parts)


class _Reasons:
    """Every cell's reason, numbered, each text on the page once: a failed cell points at its
    line in the failure list (one per tenant and reason), any other at a hidden span. The
    failure list also holds what a migration would block (one line per tenant and blocked
    reference, docs/references.md), filtered by the status of the cell it belongs to."""

    def __init__(self, report: DriftReport) -> None:
        # (column, tenant, text) → (number, workflow names, status class for the filter)
        self.failures: dict[tuple[int, str, str], tuple[int, list[str], str]] = {}
        self.texts: dict[str, int] = {}
        self.cell: dict[tuple[int, str], int] = {}
        self._count = 0
        for column, tenant in enumerate(report.tenants, start=1):
            for w in tenant.workflows:
                for line in w.references:  # would be blocked there: follows the cell's status
                    key = (column, tenant.tenant, "would be blocked: " + line)
                    self._listed(key, CELL_CLASS[w.status], w.name)
                if w.status == FAILED:
                    key = (column, tenant.tenant, w.reason or "unknown reason")
                    number = self._listed(key, CELL_CLASS[FAILED], w.name)
                elif w.reason:
                    if w.reason not in self.texts:
                        self.texts[w.reason] = self._count
                        self._count += 1
                    number = self.texts[w.reason]
                else:
                    continue
                self.cell[(column, w.name)] = number

    def _listed(self, key: tuple[int, str, str], status: str, name: str) -> int:
        if key not in self.failures:
            self.failures[key] = (self._count, [], status)
            self._count += 1
        number, names, _ = self.failures[key]
        names.append(name)
        return number

    def others(self) -> str:
        spans = "".join(f"<span id=r{n}>{_text(text)}</span>" for text, n in self.texts.items())
        return f"<div hidden>{spans}</div>" if spans else ""


def _filters(tenants: list[str]) -> str:
    options = "".join(
        f"<option value={i}>{_text(t)}</option>" for i, t in enumerate(tenants, start=1)
    )
    boxes = "".join(
        f"<label><input type=checkbox value={CELL_CLASS[s]} checked> {s}</label> " for s in STATUSES
    )
    return (
        "<div id=filters><label>Tenant <select id=ft><option value=''>all</option>"
        f"{options}</select></label><span id=fs>{boxes}</span></div>"
    )


def _matrix(
    report: DriftReport,
    names: list[str],
    drifted: list[tuple[int, str, WorkflowDrift]],
    reasons: _Reasons,
) -> str:
    cells: dict[tuple[int, str], WorkflowDrift] = {}
    for column, tenant in enumerate(report.tenants, start=1):
        for w in tenant.workflows:
            cells[(column, w.name)] = w
    head = "".join(f"<th title='{_text(t.tenant)}'>{_text(t.tenant)}" for t in report.tenants)
    rows = [f"<div class=scroll><table id=matrix><thead><tr><th>workflow{head}</thead><tbody>"]
    for name in names:
        row = [f"<tr><th title='{_text(name)}'>{_text(name)}"]
        for column, tenant in enumerate(report.tenants, start=1):
            cell = cells.get((column, name))
            if cell is None:
                row.append("<td>")
            elif cell.status == DRIFTED:
                row.append(f"<td class=d><a href=#d{len(drifted)}>~</a>")
                drifted.append((column, tenant.tenant, cell))
            else:
                why = reasons.cell.get((column, name))
                attr = "" if why is None else f" data-r={why}"
                row.append(f"<td class={CELL_CLASS[cell.status]}{attr}>")
        rows.append("".join(row))
    rows.append("</tbody></table></div>")
    return "\n".join(rows)


def _drift_details(n: int, column: int, tenant: str, cell: WorkflowDrift) -> str:
    where = f"version {cell.target_version}" if cell.target_version else "no version"
    summary = (
        f"{_text(tenant)} / {_text(cell.name)}: drifted ({_text(where)}, workflow "
        f"{_text(str(cell.target_workflow_id))}): {_text(summarize_differences(cell.differences))}"
    )
    items = "".join(f"<li>{_text(d.describe())}" for d in cell.differences)
    graphs = ""
    if cell.comparison is not None:
        # Stacked, the sources' above the tenant's: side by side, two graphs of a fan-out or
        # two do not fit a 1024 px screen, and the second would be clipped.
        graphs = (
            "<div class=pair>"
            f"<figure><figcaption>sources</figcaption>{_svg(cell.comparison.source_graph, f'{n}s')}</figure>"
            f"<figure><figcaption>{_text(tenant)}</figcaption>{_svg(cell.comparison.target_graph, f'{n}t')}</figure>"
            "</div>"
        )
    return (
        f"<details id=d{n} data-t={column} data-s={CELL_CLASS[DRIFTED]}><summary>{summary}"
        f"</summary><ul class=diffs>{items}</ul>{graphs}</details>"
    )


def _failures(reasons: _Reasons) -> str:
    # A tenant that could not be read fails every cell with one reason: list it once.
    if not reasons.failures:
        return ""
    items = []
    for (column, tenant, reason), (number, names, status) in reasons.failures.items():
        shown = ", ".join(_text(n) for n in names[:5]) + (
            f", … ({len(names)})" if len(names) > 5 else ""
        )
        items.append(
            f"<li data-t={column} data-s={status}>{_text(tenant)}: "
            f"<span id=r{number}>{_text(reason)}</span> ({shown})"
        )
    return (
        f"<section class=group id=failed><h2>Failed</h2><ul class=failures>{''.join(items)}</ul>"
        "</section>"
    )


# --------------------------------------------------------------------------------------------
# Task graphs


_NODE_STYLE = {
    CHANGED: ("#fff3bf", "#e6a700"),
    ADDED: ("#d3f9d8", "#2b8a3e"),
    REMOVED: ("#ffe3e3", "#c92a2a"),
}
_PLAIN_NODE = ("#f1f3f5", "#868e96")
_EDGE_COLOUR = {ADDED: "#2b8a3e", REMOVED: "#c92a2a"}


def _short(label: str) -> str:
    label = printable(label)
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + ELLIPSIS


def _label_spot(
    start: tuple[int, int], end: tuple[int, int], *, fans_out: bool, merges: bool
) -> tuple[int, int, str]:
    """Where a straight arrow's label goes: on the stretch of the arrow no sibling shares (near
    the target when its source fans out, near the source when its target has several arrows
    in), on the outer side of the arrow, so each label reads as its own arrow's."""
    (x1, y1), (x2, y2) = start, end
    at = 0.5 if fans_out == merges else 0.64 if fans_out else 0.3
    x = round(x1 + (x2 - x1) * at)
    y = round(y1 + (y2 - y1) * at) + 4
    if x2 < x1:
        return x - 5, y, " text-anchor=end"
    return x + 5, y, ""


def _spread(wanted: list[float], step: float) -> list[float]:
    """Positions as close as possible (least squares) to `wanted`, in that order, at least
    `step` apart: pool-adjacent-violators on `wanted[i] - i * step`."""
    blocks: list[tuple[float, int]] = []  # (sum, count) of pooled shifted positions
    for i, w in enumerate(wanted):
        total, count = w - i * step, 1
        while blocks and blocks[-1][0] / blocks[-1][1] > total / count:
            pooled_total, pooled_count = blocks.pop()
            total, count = total + pooled_total, count + pooled_count
        blocks.append((total, count))
    shifted = [total / count for total, count in blocks for _ in range(count)]
    return [q + i * step for i, q in enumerate(shifted)]


def _layout(graph: TaskGraph) -> dict[str, tuple[int, int]]:
    """Each task's top-left corner. Layers by depth from the entry, top to bottom; within a
    layer a task goes under its parents, the children of one task spread evenly beneath it in
    the order of their linkages' labels (`Case_1` … `Case_Else`, left to right), and tasks of
    a layer pushed apart no more than needed not to overlap."""
    step = _NODE_W + _GAP_X
    nodes = {n.key: n for n in graph.nodes}
    children: dict[str, dict[str, str]] = defaultdict(dict)  # parent → child → linkage label
    for e in graph.edges:
        if (
            e.source in nodes
            and e.target in nodes
            and nodes[e.source].depth < nodes[e.target].depth
        ):
            children[e.source].setdefault(e.target, e.label)
    layers: dict[int, list[str]] = defaultdict(list)
    for n in graph.nodes:
        layers[n.depth].append(n.key)
    x: dict[str, float] = {}
    for depth in sorted(layers):
        wants: dict[str, list[float]] = defaultdict(list)
        for parent, kids in children.items():
            if parent not in x:
                continue
            here = sorted(
                (label, nodes[k].label, k) for k, label in kids.items() if nodes[k].depth == depth
            )
            for i, (_, _, k) in enumerate(here):
                wants[k].append(x[parent] + (i - (len(here) - 1) / 2) * step)
        wanted = {k: sum(w) / len(w) for k, w in wants.items()}
        order = sorted(
            layers[depth],
            key=lambda k: (k not in wanted, wanted.get(k, 0.0), nodes[k].label, k),
        )
        targets: list[float] = []
        for k in order:  # tasks under no parent drawn yet go to the right of the others
            targets.append(wanted.get(k, targets[-1] + step if targets else 0.0))
        x.update(zip(order, _spread(targets, step), strict=True))
    left = min(x.values(), default=0.0)
    return {k: (round(x[k] - left) + 10, _TOP + nodes[k].depth * (_NODE_H + _GAP_Y)) for k in nodes}


def _svg(graph: TaskGraph, uid: str) -> str:
    """Tasks in layers by depth from the entry (top to bottom), linkages as labelled arrows."""
    place = _layout(graph)
    # Room on the right for the label of an arrow to the rightmost task, and below the last
    # layer for an arrow back up (drawn as a curve under both ends).
    width = max((x for x, _ in place.values()), default=10) + _NODE_W + 60
    bottom = max((y for _, y in place.values()), default=_TOP) + _NODE_H
    back = any(
        e.source in place and e.target in place and place[e.target][1] <= place[e.source][1]
        for e in graph.edges
    )
    height = bottom + (_GAP_Y // 2 + 30 if back else 12)
    # The start marker sits above the first task an entry linkage leads to.
    entry = next((e.target for e in graph.edges if e.source is None and e.target in place), None)
    start = (place[entry][0] + _NODE_W // 2 if entry else width // 2, 14)
    out = [
        f"<svg width={width} height={height} viewBox='0 0 {width} {height}' role=img>",
        f"<defs><marker id=a{uid} viewBox='0 0 8 8' refX=8 refY=4 markerWidth=7 "
        "markerHeight=7 orient=auto><path d='M0,0L8,4L0,8z' fill='#495057'/></marker></defs>",
        f"<circle cx={start[0]} cy={start[1]} r=6 fill='#495057'><title>start</title></circle>",
    ]
    outgoing: dict[str | None, int] = defaultdict(int)
    incoming: dict[str, int] = defaultdict(int)
    for edge in graph.edges:
        outgoing[edge.source] += 1
        incoming[edge.target] += 1
    for edge in graph.edges:
        if edge.target not in place:
            continue
        tx, ty = place[edge.target]
        colour = _EDGE_COLOUR.get(edge.state, "#868e96")
        dash = " stroke-dasharray='5 3'" if edge.state == REMOVED else ""
        x2, y2 = tx + _NODE_W // 2, ty
        if edge.source is None:
            x1, y1 = start[0], start[1] + 6
        else:
            sx, sy = place[edge.source]
            x1, y1 = sx + _NODE_W // 2, sy + _NODE_H
        if edge.source is not None and ty <= place[edge.source][1]:
            # Back to the same or an earlier layer: a curve below both, into the target's bottom.
            y2 = ty + _NODE_H
            cx, cy = (x1 + x2) // 2, max(y1, y2) + _GAP_Y // 2 + 8
            shape = f"<path d='M{x1},{y1} Q{cx},{cy} {x2},{y2}' fill=none "
            # Under the curve's lowest point, clear of the straight edges' labels.
            lx, ly, anchor = cx + 3, (y1 + 2 * cy + y2) // 4 + 12, ""
        else:
            shape = f"<line x1={x1} y1={y1} x2={x2} y2={y2} "
            lx, ly, anchor = _label_spot(
                (x1, y1),
                (x2, y2),
                fans_out=outgoing[edge.source] > 1,
                merges=incoming[edge.target] > 1,
            )
        out.append(
            f"<g><title>{_text(edge.label)} ({edge.state})</title>{shape}"
            f"stroke='{colour}' stroke-width=1.5{dash} marker-end='url(#a{uid})'/>"
            f"<text class=l x={lx} y={ly}{anchor} fill='{colour}'>"
            f"{_text(_short(edge.label))}</text></g>"
        )
    for node in graph.nodes:
        x, y = place[node.key]
        fill, stroke = _NODE_STYLE.get(node.state, _PLAIN_NODE)
        out.append(
            f"<g class='n {node.state}'><title>{_text(node.label)} · {_text(node.action)} "
            f"({node.state})</title><rect x={x} y={y} width={_NODE_W} height={_NODE_H} rx=4 "
            f"fill='{fill}' stroke='{stroke}'/><text x={x + 6} y={y + 18}>"
            f"{_text(_short(node.label))}</text></g>"
        )
    out.append("</svg>")
    return "".join(out)
