"""Test helpers: a hand-made motion descriptor and a nearest-centroid classifier.

Written independently of the generator: they only look at foreground masks
(pixels far from the background), never at the generator's parameters.
Tests get them through the ``motion`` fixture.
"""
from __future__ import annotations

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
