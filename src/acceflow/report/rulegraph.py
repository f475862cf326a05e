"""Snakemake's rule graph as SVG, without Graphviz.

Snakemake prints the rule graph of a run in Graphviz's dot language (``snakemake --rulegraph``,
or ``workflow.dag.rule_dot()`` inside a running workflow). Graphviz is not a dependency of
acceflow, so :func:`parse_dot` reads the few dot statements Snakemake writes (nodes with a
``label``, edges ``a -> b``) and :func:`rulegraph_svg` draws a layered drawing: each rule sits
one layer below the deepest rule it depends on, edges run downwards. Pure Python, deterministic.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

__all__ = ["parse_dot", "layers", "rulegraph_svg"]

_NODE = re.compile(r'^\s*(\w+)\s*\[\s*label\s*=\s*"((?:[^"\\]|\\.)*)"', re.M)
_EDGE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)", re.M)


def parse_dot(dot: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Rules (node labels, sorted) and dependency edges ``(upstream, downstream)`` of a rule graph.

    Reads the dot text Snakemake writes for ``--rulegraph``; other statements are ignored.
    """
    labels = {m.group(1): m.group(2).replace('\\"', '"') for m in _NODE.finditer(dot)}
    edges = sorted({(labels[a], labels[b]) for a, b in _EDGE.findall(dot) if a in labels and b in labels})
    return sorted(set(labels.values())), edges


def layers(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Longest-path layering: a node's layer is 1 + the deepest layer of the nodes it depends on.

    Within a layer nodes are ordered by the mean position of their parents (then by name).
    Raises ``ValueError`` on a cycle.
    """
    parents: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        parents.setdefault(b, set()).add(a)
        parents.setdefault(a, set())
    depth: dict[str, int] = {}

    def visit(n: str, stack: frozenset = frozenset()) -> int:
        if n in depth:
            return depth[n]
        if n in stack:
            raise ValueError(f"cycle through rule {n!r}")
        depth[n] = 1 + max((visit(p, stack | {n}) for p in parents[n]), default=-1)
        return depth[n]

    for n in sorted(parents):
        visit(n)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for n in sorted(depth):
        out[depth[n]].append(n)
    pos: dict[str, float] = {}
    for layer in out:
        layer.sort(key=lambda n: (sum(pos[p] for p in parents[n]) / len(parents[n]) if parents[n] else 0.0, n))
        for i, n in enumerate(layer):
            pos[n] = i - (len(layer) - 1) / 2
    return out


def rulegraph_svg(dot: str, title: str = "Snakemake rule graph", job_counts: Mapping[str, int] | None = None) -> str:
    """An SVG drawing of the rule graph in ``dot`` (rules as boxes, dependencies as arrows, top-down).

    ``job_counts`` (rule -> number of jobs), when given, is written under each rule's name.
    """
    nodes, edges = parse_dot(dot)
    rows = layers(nodes, edges)
    char_w, box_h, gap_x, gap_y, pad = 7.2, 34.0, 22.0, 46.0, 16.0
    widths = {n: max(70.0, char_w * len(n) + 24) for n in nodes}
    row_w = [sum(widths[n] for n in r) + gap_x * (len(r) - 1) for r in rows]
    width = max(row_w, default=200.0) + 2 * pad
    width = max(width, 220.0)
    top = pad + 22
    height = top + len(rows) * box_h + max(0, len(rows) - 1) * gap_y + pad
    centre: dict[str, tuple[float, float]] = {}
    for k, row in enumerate(rows):
        x = (width - row_w[k]) / 2
        y = top + k * (box_h + gap_y)
        for n in row:
            centre[n] = (x + widths[n] / 2, y + box_h / 2)
            x += widths[n] + gap_x
    e = lambda s: html.escape(str(s), quote=True)  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{e(title)}">',
        f"<title>{e(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#777"/></marker></defs>',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{pad}" y="{pad + 6}" font-family="sans-serif" font-size="12" fill="#333">{e(title)}</text>',
    ]
    for a, b in edges:
        (xa, ya), (xb, yb) = centre[a], centre[b]
        parts.append(f'<line x1="{xa:.1f}" y1="{ya + box_h / 2:.1f}" x2="{xb:.1f}" y2="{yb - box_h / 2:.1f}" '
                     'stroke="#999" stroke-width="1.4" marker-end="url(#arrow)"/>')
    for n in nodes:
        x, y = centre[n]
        w = widths[n]
        label = e(n)
        parts.append(f'<g class="rule"><rect x="{x - w / 2:.1f}" y="{y - box_h / 2:.1f}" width="{w:.1f}" '
                     f'height="{box_h:.1f}" rx="7" fill="#eef5fb" stroke="#0072b2" stroke-width="1.5"/>')
        if job_counts and n in job_counts:
            parts.append(f'<text x="{x:.1f}" y="{y - 2:.1f}" text-anchor="middle" font-family="sans-serif" '
                         f'font-size="12">{label}</text>'
                         f'<text x="{x:.1f}" y="{y + 11:.1f}" text-anchor="middle" font-family="sans-serif" '
                         f'font-size="9" fill="#555">{int(job_counts[n])} job(s)</text></g>')
        else:
            parts.append(f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" font-family="sans-serif" '
                         f'font-size="12">{label}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
