"""The canonical form's colour refinement is near-linear and gives the textbook ranks (issue 14 #10).

A chain of identical tasks needs n/2 refinement rounds; done over every task each round that was
quadratic (6,400 tasks: a minute). The work is measured by counting edge-list reads, not time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.core import canonical
from migrator.core.canonical import _refine, _refine_rounds, canonical_hash
from tests import canonical_reference

Edges = list[list[tuple[int, int]]]


class CountingList(list[Any]):
    """A list that counts how often an item is read."""

    reads = 0

    def __getitem__(self, index: Any) -> Any:
        CountingList.reads += 1
        return super().__getitem__(index)


def chain_graph(n: int) -> tuple[list[Any], Edges, Edges]:
    """n look-alike tasks in a chain: only the first one's entry edge tells them apart."""
    seeds: list[Any] = [(b"task", ("Start",))] + [(b"task", ())] * (n - 1)
    out_edges: Edges = [[] for _ in range(n)]
    in_edges: Edges = [[] for _ in range(n)]
    for i in range(n - 1):
        out_edges[i].append((2, i + 1))  # linkage i -> i+1
        in_edges[i + 1].append((2, i))
        out_edges[i + 1].append((0, i))  # parent link: i+1's task_id is i
        in_edges[i].append((0, i + 1))
    return seeds, out_edges, in_edges


def edge_lists(out_edges: Edges, in_edges: Edges) -> Any:
    """The `edges` callable refinement asks for its edge lists."""
    return lambda: (out_edges, in_edges)


def reads_to_refine(refine: Any, n: int) -> int:
    seeds, out_edges, in_edges = chain_graph(n)
    counted = (CountingList(out_edges), CountingList(in_edges))
    CountingList.reads = 0
    refine(seeds, lambda: counted)
    return CountingList.reads


def test_refinement_work_grows_linearly_on_a_chain() -> None:
    """Doubling a chain of look-alike tasks at most about doubles the refinement's work (the textbook rounds quadruple it)."""
    small, large = reads_to_refine(_refine, 400), reads_to_refine(_refine, 800)
    assert large <= 2.5 * small, (small, large)
    textbook_small = reads_to_refine(_refine_rounds, 400)
    textbook_large = reads_to_refine(_refine_rounds, 800)
    assert textbook_large >= 3.5 * textbook_small  # the measure does see quadratic work
    assert small * 10 < textbook_small


def test_chain_ranks_are_the_textbook_ranks() -> None:
    """On the chain the fast refinement gives exactly the textbook round-by-round ranks."""
    for n in (2, 3, 7, 50, 301):
        seeds, out_edges, in_edges = chain_graph(n)
        assert _refine(seeds, edge_lists(out_edges, in_edges)) == _refine_rounds(
            seeds, edge_lists(out_edges, in_edges)
        )


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[Any], Edges, Edges]:
    n = draw(st.integers(1, 40))
    seeds = [draw(st.sampled_from([b"a", b"b", b"c"])) for _ in range(n)]
    out_edges: Edges = [[] for _ in range(n)]
    in_edges: Edges = [[] for _ in range(n)]
    for _ in range(draw(st.integers(0, 3 * n))):
        a, b, kind = (
            draw(st.integers(0, n - 1)),
            draw(st.integers(0, n - 1)),
            draw(st.integers(0, 3)),
        )
        out_edges[a].append((kind, b))
        in_edges[b].append((kind, a))
    return seeds, out_edges, in_edges


@settings(max_examples=400, deadline=None)
@given(graphs())
def test_fast_refinement_equals_the_textbook_rounds(graph: tuple[list[Any], Edges, Edges]) -> None:
    """On any graph (look-alike seeds, loops, parallel edges, cycles) both give the same ranks."""
    seeds, out_edges, in_edges = graph
    assert _refine(seeds, lambda: (out_edges, in_edges)) == _refine_rounds(
        seeds, lambda: (out_edges, in_edges)
    )


def chained_document(n: int) -> dict[str, Any]:
    """A workflow of n identical Callout tasks chained one after the other."""
    tasks = [
        {
            "id": i + 1,
            "name": "Same",
            "action_type": "Callout",
            "task_id": i if i else None,
            "parameters": {"url": "https://example.com/hook", "body": "x" * 80},
        }
        for i in range(n)
    ]
    links = [
        {
            "source_workflow_id": 7,
            "source_task_id": None,
            "target_task_id": 1,
            "linkage_type": "Start",
        }
    ]
    links += [
        {
            "source_workflow_id": None,
            "source_task_id": i,
            "target_task_id": i + 1,
            "linkage_type": "Success",
        }
        for i in range(1, n)
    ]
    return {
        "workflow": {"id": 7, "name": "Chain", "parameters": {}},
        "tasks": tasks,
        "linkages": links,
    }


def test_chained_document_hashes_as_the_frozen_reference() -> None:
    """A 300-task chain of identical tasks hashes exactly as the frozen reference code hashes it."""
    doc = chained_document(300)
    assert canonical_hash(doc) == canonical_reference.canonical_hash(doc)
    assert canonical.canonical_task_order(doc) == canonical_reference.canonical_task_order(doc)


@pytest.mark.timeout(30)
def test_the_6400_task_chain_hashes_quickly() -> None:
    """The issue's 900 KiB document of 6,400 identical chained tasks hashes (under a generous timeout; it took a minute before)."""
    doc = chained_document(6400)
    assert len(json.dumps(doc)) > 900_000
    assert len(canonical_hash(doc)) == 64
