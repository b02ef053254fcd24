"""The report of :mod:`benchmarks.step`: ratios against the AdaTAD row, the Markdown tables and the JSON file."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from benchmarks.step_profile import format_breakdown, format_gaps

__all__ = ["ratios", "format_table", "write_json"]


def ratios(rows: List[Dict[str, Any]]) -> None:
    """``time_ratio`` / ``mem_ratio`` of each step row against the AdaTAD row of its size."""
    base = {r["size"]: r for r in rows if r["config"] == "AdaTAD" and "error" not in r}
    for r in rows:
        ref = base.get(r["size"])
        if ref is None or "error" in r or r["config"] == "ViT forward":
            continue
        r["time_ratio"] = r["step_s"] / ref["step_s"]
        both = r["peak_gib"] is not None and ref["peak_gib"]
        r["mem_ratio"] = r["peak_gib"] / ref["peak_gib"] if both else None
        held, ref_held = r.get("timed_reserved_gib"), ref.get("timed_reserved_gib")
        r["reserved_ratio"] = held / ref_held if held is not None and ref_held else None


def format_table(result: Dict[str, Any]) -> str:
    """The markdown table of :func:`run`'s result, with the device and the measured matmul rate above it."""
    lines = [f"device: {result['device']}; torch {result['torch']}, CUDA {result['cuda']}; bf16 matmul "
             f"{result['peak_size']}^3: {result['peak_flops'] / 1e12:.1f} TFLOP/s (the MFU's peak, measured here)",
             "", "| size | config | batch x frames x px | step (s) | time vs AdaTAD | peak (GiB) | memory vs AdaTAD "
             "| timed steps' peak (GiB) | timed steps' reserved (GiB) | reserved vs AdaTAD | loss, step 1 | MFU |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['size']} | {r['config']} | | {r['error']} | | | | | | | | |")
            continue
        ratio = (lambda v: "-" if v is None else f"{v:.2f}x")
        gib = (lambda v: "n/a" if v is None else f"{v:.2f}")
        peak, timed, held = gib(r["peak_gib"]), gib(r.get("timed_peak_gib")), gib(r.get("timed_reserved_gib"))
        loss = "-" if r["loss"] is None else f"{r['loss']:.6g}"
        lines.append(f"| {r['size']} | {r['config']} | {r['batch']} x {r['frames']} x {r['img_size']} "
                     f"| {r['step_s']:.3f} | {ratio(r.get('time_ratio'))} | {peak} | {ratio(r.get('mem_ratio'))} "
                     f"| {timed} | {held} | {ratio(r.get('reserved_ratio'))} | {loss} | {100 * r['mfu']:.1f}% |")
    lines += [f"- {r['size']} {r['config']}: {r['timed_setup_events']} CUDA-graph capture(s) or memory plan(s) during "
              f"the timed steps: some timed steps ran eagerly or planned (raise --warmup)"
              for r in result["rows"] if r.get("timed_setup_events")]
    lines += _memory_lines(result["rows"])
    breakdown = format_breakdown(result["rows"])
    if breakdown:
        lines += ["", "One profiled step (after the timed ones): device ms per kind of kernel (benchmarks/step_profile.py)",
                  "", breakdown]
        gaps = format_gaps(result["rows"])
        lines += ["", "Where the device sat idle in that step:", "", gaps] if gaps else []
    return "\n".join(lines)


def _memory_lines(rows: List[Dict[str, Any]]) -> List[str]:
    """Per row with ``memory_top`` (``--profile-memory``): what was alive at its peak, and each pool's memory."""
    lines: List[str] = []
    for r in rows:
        if "memory_top" not in r:
            continue
        lines += ["", f"{r['size']} {r['config']}: alive at the peak of allocated memory (GiB)", "",
                  "| allocated at | GiB |", "| --- | --- |"]
        lines += [f"| {label} | {gib:.3f} |" for label, gib in r["memory_top"]]
        lines += [f"- pool {pool}: {held:.3f} GiB reserved, {used:.3f} GiB allocated at the end"
                  for pool, held, used in r["memory_pools"]]
    return lines


def write_json(result: Dict[str, Any], path: str) -> None:
    """``result`` as JSON at ``path``, written to a temporary file and renamed (never half-written)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)
