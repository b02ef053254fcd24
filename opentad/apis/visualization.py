"""A timeline picture of a video's detections: one row per class, time on the x axis.

Drawn with matplotlib's object API on an Agg canvas (no display, no change
to the global backend). The image is exactly ``width`` x
:func:`timeline_height` pixels.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["plot_timeline", "timeline_height", "timeline_rows", "assign_lanes", "HEADER_PX", "FOOTER_PX"]

#: pixels above the first row (title) and below the last one (time axis).
HEADER_PX = 40
FOOTER_PX = 50


def timeline_height(num_rows: int, row_height: int) -> int:
    """Image height in pixels for ``num_rows`` class rows (at least one row is drawn)."""
    return HEADER_PX + FOOTER_PX + max(1, num_rows) * row_height


def timeline_rows(
    detections: Sequence[Mapping[str, Any]], *, top_per_class: int, max_classes: int
) -> List[Tuple[str, List[Mapping[str, Any]]]]:
    """``[(class, its top detections), ...]``: classes ordered by their best score, at most ``max_classes``.

    Args:
        detections: ``{"segment", "label", "score"}`` dicts, any order.
        top_per_class: detections kept per class (highest scores).
        max_classes: rows kept.
    """
    by_class: Dict[str, List[Mapping[str, Any]]] = {}
    for det in sorted(detections, key=lambda d: -d["score"]):
        by_class.setdefault(det["label"], []).append(det)
    rows = [(label, dets[:top_per_class]) for label, dets in by_class.items()]
    return rows[:max_classes]


def assign_lanes(segments: Sequence[Sequence[float]]) -> List[int]:
    """Lane of each segment so that segments in one lane do not overlap (first free lane, by start time)."""
    lanes_end: List[float] = []
    lanes = [0] * len(segments)
    for i in sorted(range(len(segments)), key=lambda j: segments[j][0]):
        start, end = segments[i]
        lane = next((k for k, last in enumerate(lanes_end) if last <= start), len(lanes_end))
        if lane == len(lanes_end):
            lanes_end.append(end)
        lanes_end[lane] = end
        lanes[i] = lane
    return lanes


def _draw_rows(ax, rows, ground_truth, row_span: float = 0.8) -> None:
    """Bars of each row (overlapping detections stacked in lanes), then the ground-truth lines under them."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"]
    for i, (label, dets) in enumerate(rows):
        y = len(rows) - 1 - i
        lanes = assign_lanes([d["segment"] for d in dets])
        height = row_span / max(1, max(lanes, default=0) + 1)
        for det, lane in zip(dets, lanes):
            start, end = det["segment"]
            bottom = y - row_span / 2 + lane * height
            ax.broken_barh([(start, max(end - start, 1e-3))], (bottom, height * 0.9), facecolors=colours(i % 10),
                           alpha=0.25 + 0.75 * float(det["score"]), edgecolor="black", linewidth=0.5)
            ax.text(start, bottom + height * 0.45, f" {det['score']:.2f}", fontsize=6, va="center")
        for gt in ground_truth.get(label, []):
            ax.plot(gt, [y - row_span / 2 - 0.06] * 2, color="black", linewidth=3, solid_capstyle="butt")


def plot_timeline(
    detections: Sequence[Mapping[str, Any]],
    *,
    duration: float,
    out: str,
    title: str = "",
    top_per_class: int = 5,
    max_classes: int = 10,
    ground_truth: Optional[Sequence[Mapping[str, Any]]] = None,
    width: int = 1200,
    row_height: int = 40,
    dpi: int = 100,
) -> Tuple[int, int]:
    """Write a PNG timeline of the top detections of each class over ``[0, duration]`` seconds.

    Each class with a detection gets a row (best-scoring classes first); each
    of its ``top_per_class`` best detections is a bar from start to end whose
    opacity grows with the score, labelled with the score; overlapping bars
    are stacked in lanes within the row. Ground truth, when given, is drawn as
    a black line under the row of its class (classes with ground truth but no
    detection get a row too).

    Args:
        detections: ``{"segment": [s, e], "label", "score"}`` dicts (seconds).
        duration: the video's length in seconds (the x range).
        out: the PNG file to write (folders are created).
        title: text above the plot.
        top_per_class: bars per class.
        max_classes: rows at most.
        ground_truth: optional ``{"segment", "label"}`` dicts.
        width: image width in pixels.
        row_height: pixels per class row; the height is :func:`timeline_height`.
        dpi: resolution used to turn pixels into figure inches.

    Returns:
        ``(width, height)`` of the written image in pixels.

    Raises:
        ValueError: ``duration`` is not positive.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not duration > 0:
        raise ValueError(f"plot_timeline: duration must be > 0, got {duration}")
    gt_by_class: Dict[str, List[List[float]]] = {}
    for gt in ground_truth or []:
        gt_by_class.setdefault(gt["label"], []).append(list(gt["segment"]))
    rows = timeline_rows(detections, top_per_class=top_per_class, max_classes=max_classes)
    rows += [(label, []) for label in gt_by_class if label not in dict(rows)][: max(0, max_classes - len(rows))]
    height = timeline_height(len(rows), row_height)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.16, FOOTER_PX / height, 0.82, 1 - (HEADER_PX + FOOTER_PX) / height))
    _draw_rows(ax, rows, gt_by_class)
    ax.set_xlim(0, duration)
    ax.set_ylim(-0.6, max(1, len(rows)) - 0.4)
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)], fontsize=8)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    if not rows:
        ax.text(duration / 2, 0, "no detections", ha="center", va="center")
    legend = "bars: detections (opacity = score)" + ("; black lines: ground truth" if gt_by_class else "")
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=8, y=1 - 4 / height, va="top")
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return width, height
