"""Test helpers: a hand-made motion descriptor and a nearest-centroid classifier
(the ``motion`` fixture), and a subprocess that runs like another CPU would
(the ``other_cpu`` fixture).

The motion helpers are written independently of the generator: they only
look at foreground masks (pixels far from the background), never at the
generator's parameters.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

DESCRIPTOR_NAMES = (
    "median_vx",
    "median_vy",
    "median_abs_vx",
    "median_abs_vy",
    "empty_fraction",
    "area_cv",
    "median_area_growth",
    "elongation",
    "median_spread_growth",
    "median_abs_turn",
    "median_angular_momentum",
    "median_radius_growth",
    "std_x",
    "std_y",
    "skew_y",
    "jump_fraction",
)


def _median(values: np.ndarray, keep: np.ndarray) -> float:
    keep = keep & np.isfinite(values)
    return float(np.median(values[keep])) if keep.any() else 0.0


def motion_descriptor(mask: np.ndarray, fps: float = 30.0) -> np.ndarray:
    """Statistics of the foreground's motion over a clip.

    Args:
        mask: bool [N, H, W], True on foreground pixels.
        fps: frame rate, to express velocities per second.

    Returns:
        float64 [len(DESCRIPTOR_NAMES)]; positions are in units of the longer side.
    """
    _, height, width = mask.shape
    yy, xx = np.mgrid[0:height, 0:width] / float(max(height, width))
    area = mask.sum((1, 2)).astype(float)
    on = area > 2
    denom = np.maximum(area, 1)

    def moment(weight):
        return np.where(on, (mask * weight).sum((1, 2)) / denom, np.nan)

    cx, cy = moment(xx), moment(yy)
    sxx, syy, sxy = moment(xx * xx) - cx**2, moment(yy * yy) - cy**2, moment(xx * yy) - cx * cy
    vx, vy = np.diff(cx), np.diff(cy)
    smooth = np.isfinite(vx) & (np.hypot(vx, vy) < 0.1)
    trace, det = sxx + syy, sxx * syy - sxy**2
    disc = np.sqrt(np.maximum(trace**2 / 4 - det, 0))
    elongation = np.log((trace / 2 + disc + 1e-5) / (np.maximum(trace / 2 - disc, 0) + 1e-5))
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    turn = np.angle(np.exp(2j * np.diff(theta))) / 2
    rx, ry = cx - np.nanmean(cx), cy - np.nanmean(cy)
    spread = np.sqrt(np.maximum(trace, 0))
    mean_area = area[on].mean() if on.any() else 1.0
    centred_y = cy[on] - cy[on].mean() if on.any() else np.zeros(1)
    return np.nan_to_num(
        np.array(
            [
                _median(vx, smooth) * fps,
                _median(vy, smooth) * fps,
                _median(np.abs(vx), smooth) * fps,
                _median(np.abs(vy), smooth) * fps,
                1.0 - on.mean(),
                area[on].std() / mean_area if on.any() else 0.0,
                _median(np.diff(area) / mean_area, smooth) * fps,
                np.nanmean(elongation) if on.any() else 0.0,
                _median(np.diff(spread), smooth) * fps,
                _median(np.abs(turn), smooth),
                _median(rx[:-1] * vy - ry[:-1] * vx, smooth) * fps * 100,
                _median(np.diff(np.hypot(rx, ry)), smooth) * fps,
                np.nanstd(cx),
                np.nanstd(cy),
                (centred_y**3).mean() / (centred_y.std() ** 3 + 1e-9),
                np.mean(~smooth),
            ]
        )
    )


def leave_one_out_nearest_centroid(features: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of a nearest-centroid classifier on standardised features, each sample left out of its centroid.

    Args:
        features: [N, D].
        labels: int [N]; every class needs at least two samples.
    """
    z = (features - features.mean(0)) / (features.std(0) + 1e-9)
    classes = np.unique(labels)
    correct = 0
    for i in range(len(z)):
        others = np.arange(len(z)) != i
        centroids = np.stack([z[others & (labels == k)].mean(0) for k in classes])
        correct += classes[np.argmin(((centroids - z[i]) ** 2).sum(1))] == labels[i]
    return correct / len(z)


@pytest.fixture
def motion():
    """The helpers above: ``descriptor``, ``names`` and ``loo_accuracy``."""
    return SimpleNamespace(
        descriptor=motion_descriptor, names=DESCRIPTOR_NAMES, loo_accuracy=leave_one_out_nearest_centroid
    )


def _numpy_dispatch_features() -> list:
    """NumPy's optional SIMD targets this CPU has (e.g. X86_V3, X86_V4); [] if NumPy does not say."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # pragma: no cover - other NumPy layouts
        return []
    return [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]


def run_as_other_cpu(code: str, timeout: float = 300.0) -> str:
    """Run Python ``code`` in a fresh process set up like a smaller, single-core CPU.

    NumPy's SIMD targets beyond its baseline are switched off
    (``NPY_DISABLE_CPU_FEATURES``), OpenBLAS uses its SSE3 kernels
    (``OPENBLAS_CORETYPE=Prescott``, another summation order than AVX2 or
    AVX-512 kernels), thread variables ask for 3 threads, and the process is
    pinned to one core (``taskset -c 0``) where ``taskset`` exists. The code
    can limit x264 itself (``writer.X264_PARAMS["asm"] = "0"``).

    Returns:
        The process's stdout; a non-zero exit fails the test with its stderr.
    """
    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ, OMP_NUM_THREADS="3", OPENBLAS_NUM_THREADS="3", MKL_NUM_THREADS="3")
    env.update(OPENBLAS_CORETYPE="Prescott", NPY_DISABLE_CPU_FEATURES=" ".join(_numpy_dispatch_features()))
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-c", code]
    if shutil.which("taskset") and 0 in os.sched_getaffinity(0):
        command = ["taskset", "-c", "0"] + command
    done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        pytest.fail(f"subprocess failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


@pytest.fixture
def other_cpu():
    """:func:`run_as_other_cpu`."""
    return run_as_other_cpu
