"""Icicle graph (an upside-down flame graph) of the `profile` table, one panel per topology.

Drawn with matplotlib from the table's folded stacks: the root at the top, each frame as wide as its
share of the panel's samples; kernel frames warm, user frames cool. Frames narrower than
``min_share`` are merged away so the figure stays legible and quick to draw.
"""
from __future__ import annotations

import zlib

import pandas as pd
from matplotlib.figure import Figure

from zcrxprof.vocab import TOPOLOGIES
KERNEL_COLOURS = ["#e6550d", "#fd8d3c", "#fdae6b", "#f16913"]
USER_COLOURS = ["#3182bd", "#6baed6", "#9ecae1", "#4292c6"]


def _tree(stacks: pd.Series, samples: pd.Series, max_depth: int) -> dict[tuple[str, ...], int]:
    """Samples per stack prefix (every ancestor path gets its descendants' samples)."""
    counts: dict[tuple[str, ...], int] = {}
    for stack, n in zip(stacks, samples):
        frames = tuple(stack.split(";"))[:max_depth]
        for depth in range(1, len(frames) + 1):
            key = frames[:depth]
            counts[key] = counts.get(key, 0) + int(n)
    return counts


def _layout(counts: dict[tuple[str, ...], int], total: int, min_share: float) -> list[tuple[int, float, float, str]]:
    """(depth, x, width, frame) rectangles; children sorted by name under their parent (flamegraph order)."""
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for key in counts:
        children.setdefault(key[:-1], []).append(key)
    rects = []
    todo = [((), 0.0)]
    while todo:
        parent, x = todo.pop()
        for key in sorted(children.get(parent, [])):
            width = counts[key] / total
            if width >= min_share:
                rects.append((len(key) - 1, x, width, key[-1]))
                todo.append((key, x))
            x += width
    return rects


def _title(group: pd.DataFrame, name: str) -> str:
    parts = [name]
    for col, fmt in (("backend", "backend {}"), ("kernel", "kernel {}")):
        if col in group.columns:
            parts.append(fmt.format(", ".join(sorted(group[col].astype(str).unique()))))
    if "emulated" in group.columns:
        emu = sorted(e for e in group["emulated"].astype(str).unique() if e)
        parts.append("emulated: " + "; ".join(emu) if emu else "not emulated")
    event = ", ".join(sorted(group["event"].unique())) + " " if "event" in group.columns else ""
    parts.append(f"{int(group['samples'].sum())} {event}samples")
    return " — ".join(parts)


def figure(frame: pd.DataFrame, max_depth: int = 40, min_share: float = 0.002) -> Figure:
    """Icicle graph per topology from `profile` rows (merge `runs` labels in to get one panel per
    topology and labelled titles; without a `topology` column all rows make one panel)."""
    if frame.empty:
        fig = Figure(figsize=(10, 2))
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no profile samples (record --profile)", ha="center", va="center")
        ax.set_axis_off()
        return fig
    if "topology" in frame.columns:
        names = [t for t in TOPOLOGIES if t in set(frame["topology"])]
        names += sorted(set(frame["topology"]) - set(names))
        groups = [(t, frame[frame["topology"] == t]) for t in names]
    else:
        groups = [("profile", frame)]
    panels = []
    for name, group in groups:
        counts = _tree(group["stack"], group["samples"], max_depth)
        total = int(group["samples"].sum())
        rects = _layout(counts, total, min_share)
        panels.append((name, group, rects, max((r[0] for r in rects), default=0) + 1))
    heights = [max(3, 0.22 * depth) for *_, depth in panels]
    fig = Figure(figsize=(14, sum(heights) + 0.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (name, group, rects, depth) in zip(axes, panels):
        kernel = [r[3].endswith("_[k]") for r in rects]
        colours = [(KERNEL_COLOURS if k else USER_COLOURS)[zlib.crc32(r[3].encode()) % 4]
                   for r, k in zip(rects, kernel)]
        ax.barh([r[0] for r in rects], [r[2] for r in rects], left=[r[1] for r in rects], height=0.95,
                color=colours, edgecolor="white", linewidth=0.3)
        for d, x, w, label in rects:
            label = label.removesuffix("_[k]")
            chars = int(w * 180)
            if chars >= 4:
                text = label if len(label) <= chars else label[:chars - 1] + "…"
                ax.text(x + 0.002, d, text, va="center", ha="left", fontsize=6, clip_on=True)
        ax.set_xlim(0, 1)
        ax.set_ylim(depth - 0.5, -0.5)
        ax.set_yticks([])
        ax.set_xlabel("share of samples (kernel frames warm, user frames cool)")
        ax.set_title(_title(group, name), fontsize=9, loc="left")
    return fig
