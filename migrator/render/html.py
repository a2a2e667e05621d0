"""The drift matrix as one self-contained HTML page: cells coloured by status, filterable by
tenant and status, each drifted cell opening its differences and both task graphs as inline SVG.

Pure: returns the page as text. Nothing is loaded from elsewhere (the page is read from mail
attachments and CI artifacts), and every name is escaped.
"""

from __future__ import annotations

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
_GAP_Y = 46
_TOP = 40
_LABEL_CHARS = 20

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#212529}
h1{font-size:1.3em;margin:0 0 .3em}
.meta,.legend{color:#495057}
#filters{margin:.8em 0;display:flex;gap:1em;flex-wrap:wrap;align-items:center}
table{border-collapse:collapse}
th,td{border:1px solid #dee2e6;padding:1px 6px;text-align:center;min-width:1.2em}
tbody th{text-align:left;font-weight:normal;max-width:28em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
thead th{font-weight:normal;font-size:.85em;max-width:9em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.i{background:#d3f9d8}td.i::after{content:"="}
.d{background:#ffe066}.d a{color:inherit;text-decoration:none;display:block}
.m{background:#ffc9c9}td.m::after{content:"-"}
.e{background:#d0ebff}td.e::after{content:"+"}
.f{background:#ced4da}td.f::after{content:"!"}
.legend span{padding:0 .5em;margin-right:.5em}
details{margin:.6em 0;border:1px solid #dee2e6;padding:.3em .6em}
summary{cursor:pointer}
.pair{display:flex;gap:1em;overflow-x:auto}
figure{margin:.5em 0}
figcaption{font-weight:bold}
svg text{font:11px system-ui,sans-serif}
ul.diffs{font-family:ui-monospace,monospace;font-size:.9em}
"""

# Filter by tenant (hide the other columns) and by status (hide rows with no shown cell of a
# checked status); open a drifted pair's details when its cell is followed.
_SCRIPT = """
(function(){
var ft=document.getElementById('ft'),boxes=document.querySelectorAll('#fs input');
function apply(){
 var t=ft.value,on={};
 boxes.forEach(function(b){if(b.checked)on[b.value]=1;});
 document.querySelectorAll('#matrix tr').forEach(function(r){
  var show=false;
  for(var i=1;i<r.children.length;i++){
   var c=r.children[i],vis=!t||t==String(i);
   c.hidden=!vis;
   if(vis&&on[c.className])show=true;
  }
  if(r.parentNode.tagName=='TBODY')r.hidden=!show;
 });
 document.querySelectorAll('[data-t]').forEach(function(d){
  d.hidden=!!t&&d.getAttribute('data-t')!=t;
 });
}
function openHash(){
 var d=document.getElementById(location.hash.slice(1));
 if(d&&d.tagName=='DETAILS')d.open=true;
}
ft.addEventListener('change',apply);
boxes.forEach(function(b){b.addEventListener('change',apply);});
window.addEventListener('hashchange',openHash);
openHash();
})();
"""


def _text(value: str) -> str:
    return escape(printable(value), quote=True)


def render_html(report: DriftReport, *, title: str = "Workflow drift", generated: str = "") -> str:
    """The whole page. `generated` (a timestamp, say) is shown as given: no clock is read here."""
    names = report.names()
    tenants = [t.tenant for t in report.tenants]
    counts = report.counts()
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
    parts.append(_matrix(report, names, drifted))
    parts.append(
        "<p class=legend>"
        + "".join(f"<span class={CELL_CLASS[s]}>{escape(SYMBOLS[s])} {s}</span>" for s in STATUSES)
        + "</p>"
    )
    if drifted:
        parts.append("<h2>Drifted</h2>")
        for n, (column, tenant, cell) in enumerate(drifted):
            parts.append(_drift_details(n, column, tenant, cell))
    parts.append(_failures(report))
    parts.append(f"<script>{_SCRIPT}</script></body></html>\n")
    return "".join(parts)


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
    report: DriftReport, names: list[str], drifted: list[tuple[int, str, WorkflowDrift]]
) -> str:
    cells: dict[tuple[int, str], WorkflowDrift] = {}
    for column, tenant in enumerate(report.tenants, start=1):
        for w in tenant.workflows:
            cells[(column, w.name)] = w
    head = "".join(f"<th title='{_text(t.tenant)}'>{_text(t.tenant)}" for t in report.tenants)
    rows = [f"<table id=matrix><thead><tr><th>workflow{head}</thead><tbody>"]
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
                row.append(f"<td class={CELL_CLASS[cell.status]}>")
        rows.append("".join(row))
    rows.append("</tbody></table>")
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
        graphs = (
            "<div class=pair>"
            f"<figure><figcaption>sources</figcaption>{_svg(cell.comparison.source_graph, f'{n}s')}</figure>"
            f"<figure><figcaption>{_text(tenant)}</figcaption>{_svg(cell.comparison.target_graph, f'{n}t')}</figure>"
            "</div>"
        )
    return (
        f"<details id=d{n} data-t={column}><summary>{summary}</summary>"
        f"<ul class=diffs>{items}</ul>{graphs}</details>"
    )


def _failures(report: DriftReport) -> str:
    # A tenant that could not be read fails every cell with one reason: list it once.
    grouped: dict[tuple[int, str, str], list[str]] = defaultdict(list)
    for column, column_tenant in enumerate(report.tenants, start=1):
        for cell in column_tenant.workflows:
            for line in cell.references:  # would be blocked there (docs/references.md)
                grouped[(column, column_tenant.tenant, "would be blocked: " + line)].append(
                    cell.name
                )
            if cell.status == FAILED:
                key = (column, column_tenant.tenant, cell.reason or "unknown reason")
                grouped[key].append(cell.name)
    if not grouped:
        return ""
    items = []
    for (column, tenant, reason), names in grouped.items():
        shown = ", ".join(_text(n) for n in names[:5]) + (
            f", … ({len(names)})" if len(names) > 5 else ""
        )
        items.append(f"<li data-t={column}>{_text(tenant)}: {_text(reason)} ({shown})")
    return f"<h2>Failed</h2><ul class=failures>{''.join(items)}</ul>"


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


def _svg(graph: TaskGraph, uid: str) -> str:
    """Tasks in layers by depth from the entry (top to bottom), linkages as labelled arrows."""
    layers: dict[int, list[int]] = defaultdict(list)
    for i, node in enumerate(graph.nodes):
        layers[node.depth].append(i)
    place: dict[str, tuple[int, int]] = {}
    widest = 1
    for depth, members in sorted(layers.items()):
        members.sort(key=lambda i: (graph.nodes[i].label, graph.nodes[i].key))
        widest = max(widest, len(members))
        for slot, i in enumerate(members):
            x = 10 + slot * (_NODE_W + _GAP_X)
            y = _TOP + depth * (_NODE_H + _GAP_Y)
            place[graph.nodes[i].key] = (x, y)
    width = 20 + widest * (_NODE_W + _GAP_X)
    height = _TOP + (max(layers, default=0) + 1) * (_NODE_H + _GAP_Y)
    # The start marker sits above the first task an entry linkage leads to.
    entry = next((e.target for e in graph.edges if e.source is None and e.target in place), None)
    start = (place[entry][0] + _NODE_W // 2 if entry else width // 2, 14)
    out = [
        f"<svg width={width} height={height} viewBox='0 0 {width} {height}' role=img>",
        f"<defs><marker id=a{uid} viewBox='0 0 8 8' refX=8 refY=4 markerWidth=7 "
        "markerHeight=7 orient=auto><path d='M0,0L8,4L0,8z' fill='#495057'/></marker></defs>",
        f"<circle cx={start[0]} cy={start[1]} r=6 fill='#495057'><title>start</title></circle>",
    ]
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
            lx, ly = cx + 3, (y1 + 2 * cy + y2) // 4 + 12
        else:
            shape = f"<line x1={x1} y1={y1} x2={x2} y2={y2} "
            lx, ly = (x1 + x2) // 2 + 3, (y1 + y2) // 2
        out.append(
            f"<g><title>{_text(edge.label)} ({edge.state})</title>{shape}"
            f"stroke='{colour}' stroke-width=1.5{dash} marker-end='url(#a{uid})'/>"
            f"<text x={lx} y={ly} fill='{colour}'>{_text(_short(edge.label))}</text></g>"
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
