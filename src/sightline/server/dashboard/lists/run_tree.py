"""A run as a tree of its steps, each placed on the run's timeline (the waterfall beside the tree).

A step's parent is the step whose span id its parent span id names (OpenTelemetry traces carry both,
as ``spanId``/``parentSpanId`` on each step: ``get_run`` puts a model call's own there too).
Steps without a parent, or whose parent is not in the run (the SDK's and pipelines' steps, a span
whose parent was never sent), are children of the run itself. The tree is built in two passes over
the steps with no query (a run of 500 steps is one read), and flattened into the order the page
prints it, so the template never recurses however deep a trace nests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ....store.generations.records import to_us
from ..core.formatting import Block, Message, blocks, messages, row

__all__ = ["Node", "Printed", "Tree", "build_tree", "node_input", "node_output"]

_MIN_SPAN_US = 1000  # a run shorter than 1 ms is drawn as 1 ms long
_MIN_WIDTH = 0.6  # percent: an instant step still shows a bar
_KINDS = (("retriev", "retrieval"), ("search", "retrieval"), ("embed", "retrieval"), ("tool", "tool"))


@dataclass(slots=True)
class Node:
    """One step of a run: a model call or another step, with its place in time (``left``/``width`` in
    percent of the run) and its children."""

    key: str  # what ``?step=`` names: the generation's id, the span id, or ``step-<index>``
    kind: str
    name: str
    status: str
    error: str | None
    index: int | None
    start_us: int | None
    offset_ms: float | None
    duration_ms: float | None
    tokens: int | None
    cost: float | None
    generation_id: str | None
    step: dict[str, Any]
    left: float = 0.0
    width: float = _MIN_WIDTH
    depth: int = 0
    children: list[Node] = field(default_factory=list)
    failed_below: int = 0  # failed steps among its descendants


@dataclass(frozen=True, slots=True)
class Printed:
    """A node in print order: ``closes`` is how many open lists end after it (its last ancestors')."""

    node: Node
    closes: int


@dataclass(slots=True)
class Tree:
    """The run's steps as a tree and the figures the page shows above it."""

    roots: list[Node]
    nodes: dict[str, Node]
    printed: list[Printed]
    span_ms: float
    failed: int
    cost: float | None
    tokens: int
    depth: int
    by_span: dict[str, Node]

    def find(self, key: str) -> Node | None:
        """The node ``?step=`` names: by its key, or by its span id (a model call's key is its id)."""
        return self.nodes.get(key) or self.by_span.get(key)


def _us(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _kind(step: dict[str, Any], pipeline: bool) -> str:
    given = step.get("type") or step.get("spanKind")
    if isinstance(given, str) and given:
        return given.lower()[:20]
    name = str(step.get("name", "")).lower()
    for word, kind in _KINDS:
        if word in name:
            return kind
    if pipeline:
        return "function"
    return "span" if step.get("spanId") else "step"


def _node(
    step: dict[str, Any], position: int, pipeline: bool
) -> tuple[Node, int | None, str | None, str | None]:
    """The node of one step, its end (µs), its own span id and its parent's."""
    index = step.get("stepIndex")
    if step.get("kind") == "generation":
        r = row(step)
        start = _us(step.get("timestamp"))
        end = start + int(r.latency * 1000) if start is not None and r.latency is not None else None
        error = step.get("error") or {}
        node = Node(
            key=r.id,
            kind="model call",
            name=r.model + (f" · {r.template}" if r.template else ""),
            status=r.status,
            error=(error.get("message") or error.get("type")) if error else None,
            index=index,
            start_us=start,
            offset_ms=None,
            duration_ms=None,
            tokens=r.total_tokens,
            cost=r.cost,
            generation_id=r.id,
            step=step,
        )
        return node, end, _text(step.get("spanId")), _text(step.get("parentSpanId"))
    start, end = _us(step.get("startedAt")), _us(step.get("endedAt"))
    span_id = _text(step.get("spanId"))
    error = step.get("error") or {}
    node = Node(
        key=span_id or (f"step-{index}" if index is not None else f"step-at-{position}"),
        kind=_kind(step, pipeline),
        name=str(step.get("name") or "step"),
        status=str(step.get("status") or "ok"),
        error=(error.get("message") or error.get("type")) if isinstance(error, dict) and error else None,
        index=index,
        start_us=start,
        offset_ms=None,
        duration_ms=None,
        tokens=None,
        cost=None,
        generation_id=None,
        step=step,
    )
    return node, end, span_id, _text(step.get("parentSpanId"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def build_tree(run: dict[str, Any]) -> Tree:
    """The tree of ``run``'s steps (as ``get_run`` answers them, in step order)."""
    pipeline = "pipelineId" in (run.get("metadata") or {})
    made: list[tuple[Node, int | None, str | None]] = []
    nodes: dict[str, Node] = {}
    by_span: dict[str, Node] = {}
    for position, step in enumerate(run.get("steps") or []):
        node, end, span_id, parent = _node(step, position, pipeline)
        if node.key in nodes:  # two steps under one name (a span sent twice): keep both apart
            node.key = f"{node.key}-{position}"
        nodes[node.key] = node
        if span_id is not None:
            by_span.setdefault(span_id, node)
        made.append((node, end, parent))

    # The run's time: from its first start to its last end, steps' times and its own.
    run_start, run_end = _us(run.get("startedAt")), _us(run.get("endedAt"))
    starts = [n.start_us for n, _, _ in made if n.start_us is not None]
    ends = [e for _, e, _ in made if e is not None] + starts
    if run_start is not None:
        starts.append(run_start)
    if run_end is not None:
        ends.append(run_end)
    origin = min(starts) if starts else 0
    span = max((max(ends) if ends else origin) - origin, _MIN_SPAN_US)

    roots: list[Node] = []
    failed, tokens, cost = 0, 0, None
    for node, end, parent_span in made:
        start = node.start_us
        if start is not None:
            node.offset_ms = (start - origin) / 1000
            node.left = min((start - origin) / span * 100, 100 - _MIN_WIDTH)
            if end is not None:
                node.duration_ms = (end - start) / 1000
                node.width = max((end - start) / span * 100, _MIN_WIDTH)
            node.width = min(node.width, 100 - node.left)
        above = by_span.get(parent_span) if parent_span is not None else None
        if above is None or above is node:
            roots.append(node)
        else:
            above.children.append(node)
        failed += node.status == "error"
        tokens += node.tokens or 0
        if node.cost is not None:
            cost = (cost or 0.0) + node.cost
    printed, deepest = _print_order(roots, nodes)
    return Tree(roots, nodes, printed, span / 1000, failed, cost, tokens, deepest, by_span)


def _print_order(roots: list[Node], nodes: dict[str, Node]) -> tuple[list[Printed], int]:
    """Nodes depth first, children in time order, each with the lists that close after it; a cycle of
    parents (each naming the other) is cut where it is first met, and its nodes become roots."""
    seen: set[int] = set()
    printed: list[Printed] = []
    deepest = 0

    def walk(top: Node) -> None:
        nonlocal deepest
        stack: list[tuple[Node, int]] = [(top, 0)]
        path: list[Node] = []
        while stack:
            node, depth = stack.pop()
            seen.add(id(node))
            del path[depth:]
            path.append(node)
            node.depth = depth
            deepest = max(deepest, depth)
            node.children = [c for c in node.children if id(c) not in seen]
            node.children.sort(key=lambda c: (c.start_us is None, c.start_us or 0, c.index or 0))
            printed.append(Printed(node, 0))
            if node.status == "error":
                for ancestor in path[:-1]:
                    ancestor.failed_below += 1
            for child in reversed(node.children):
                stack.append((child, depth + 1))
            if not node.children:
                # this node ends every list whose last descendant it is
                closes, at = 0, depth
                while at > 0 and path[at - 1].children and path[at - 1].children[-1] is path[at]:
                    closes += 1
                    at -= 1
                printed[-1] = Printed(node, closes)

    for root in roots:
        walk(root)
    for node in nodes.values():  # only nodes caught in a cycle are left
        if id(node) not in seen:
            roots.append(node)
            walk(node)
    return printed, deepest


def node_input(node: Node) -> tuple[list[Message], list[Block]]:
    """What went into a step: a model call's messages, or another step's inputs as blocks."""
    if node.generation_id is not None:
        return messages((node.step.get("input") or {}).get("content")), []
    inputs = node.step.get("inputs")
    return [], blocks(inputs) if inputs is not None else []


def node_output(node: Node) -> list[Block]:
    """What a step gave back: a model call's output, or another step's outputs."""
    if node.generation_id is not None:
        output = node.step.get("output") or {}
        return blocks(output.get("content"), output.get("type", "text"))
    outputs = node.step.get("outputs")
    return blocks(outputs) if outputs is not None else []
