"""Brute-force 1D NMS written from upstream OpenTAD's algorithm description.

Plain Python loops over numpy float32 scalars (C ``float`` arithmetic), one
segment at a time, used as the independent reference of the NMS tests (the
``ref`` fixture). The Gaussian weight is ``exp`` in double rounded to float32.
"""

import math
import types

import numpy as np
import pytest
import torch

F = np.float32


def _iou(a1, a2, a_len, b1, b2, b_len):
    left = b1 if a1 < b1 else a1  # std::max
    right = b2 if b2 < a2 else a2  # std::min
    inter = right - left
    inter = inter if inter > 0 else F(0)
    return F(inter / F(F(a_len + b_len) - inter))


def _columns(segs):
    x1 = [F(v) for v in segs[:, 0].tolist()]
    x2 = [F(v) for v in segs[:, 1].tolist()]
    lens = [F(F(b - a) + F(1e-6)) for a, b in zip(x1, x2)]
    return x1, x2, lens


def hard_nms(segs, scores, iou_threshold):
    """Indices kept by greedy NMS, visiting in ``torch.sort(descending=True)`` order."""
    if len(scores) == 0:
        return []
    order = torch.sort(scores, descending=True)[1].tolist()
    x1, x2, lens = _columns(segs)
    thr = F(iou_threshold)
    removed = [False] * len(order)
    kept = []
    for a, i in enumerate(order):
        if removed[a]:
            continue
        kept.append(i)
        for b in range(a + 1, len(order)):
            j = order[b]
            if not removed[b] and _iou(x1[i], x2[i], lens[i], x1[j], x2[j], lens[j]) >= thr:
                removed[b] = True
    return kept


def _weight(ovr, i_len, method, thr, sigma, t1, t2):
    if method == 0:
        return F(0) if ovr >= thr else F(1)
    if method == 1:
        return F(F(1) - ovr) if ovr >= thr else F(1)
    gauss = F(math.exp(float(F(-(ovr * ovr)) / sigma)))
    if method == 2:
        return gauss
    if method == 3:
        return gauss if ovr >= F(t1 + F(t2 * i_len)) else F(1)
    return F(1)


def soft_nms(segs, scores, iou_threshold, sigma, min_score, method, t1, t2):
    """(dets list of (x1, x2, score), original indices) by the swap-based soft-NMS loop."""
    x1, x2, lens = _columns(segs)
    sc = [F(v) for v in scores.tolist()]
    idx = list(range(len(sc)))
    thr, sig, floor, ft1, ft2 = F(iou_threshold), F(sigma), F(min_score), F(t1), F(t2)
    n = len(sc)
    dets, picked = [], []
    i = 0
    while i < n:
        best = i
        for p in range(i + 1, n):
            if sc[best] < sc[p]:
                best = p
        for col in (x1, x2, sc, lens, idx):
            col[i], col[best] = col[best], col[i]
        dets.append((x1[i], x2[i], sc[i]))
        picked.append(idx[i])
        p = i + 1
        while p < n:
            ovr = _iou(x1[i], x2[i], lens[i], x1[p], x2[p], lens[p])
            sc[p] = F(sc[p] * _weight(ovr, lens[i], method, thr, sig, ft1, ft2))
            if sc[p] < floor:
                for col in (x1, x2, sc, lens, idx):
                    col[p] = col[n - 1]
                n -= 1
                continue
            p += 1
        i += 1
    return dets, picked


def voting(kept, all_segs, all_scores, thr):
    """Score-weighted average (float64) of the segments overlapping each kept one."""
    out = []
    for a1, a2 in kept:
        num = [0.0, 0.0]
        den = 0.0
        for (b1, b2), s in zip(all_segs, all_scores):
            inter = max(0.0, min(a2, b2) - max(a1, b1))
            union = (a2 - a1) + (b2 - b1) - inter
            if union > 0 and inter / union >= thr:
                num[0] += s * b1
                num[1] += s * b2
                den += s
        out.append((num[0] / den, num[1] / den))
    return out


def batched_nms(
    segs,
    scores,
    labels,
    *,
    iou_threshold=0.0,
    min_score=0.0,
    max_seg_num=100,
    use_soft_nms=True,
    multiclass=True,
    sigma=0.5,
    voting_thresh=0.0,
    method=2,
    t1=0.0,
    t2=0.0,
):
    """Reference batched NMS: lists of (x1, x2), scores and labels, best first."""
    segs, scores = segs.float(), scores.float()
    groups = (
        [labels == c for c in sorted(set(labels.tolist()))] if multiclass else [torch.ones_like(scores, dtype=bool)]
    )
    rows = []  # (x1, x2, score, label)
    for mask in groups:
        g_segs, g_scores, g_labels = segs[mask], scores[mask], labels[mask].tolist()
        if use_soft_nms:
            dets, inds = soft_nms(g_segs, g_scores, iou_threshold, sigma, min_score, method, t1, t2)
            group = [(d[0], d[1], d[2], g_labels[k]) for d, k in zip(dets, inds)]
        else:
            keep = [k for k in range(len(g_labels)) if not (min_score > 0) or F(g_scores[k]) > F(min_score)]
            sub_segs, sub_scores = g_segs[keep], g_scores[keep]
            inds = [keep[k] for k in hard_nms(sub_segs, sub_scores, iou_threshold)]
            group = [(F(g_segs[k, 0]), F(g_segs[k, 1]), F(g_scores[k]), g_labels[k]) for k in inds]
        rows.extend(group[:max_seg_num] if max_seg_num > 0 else group)
    if not multiclass and voting_thresh > 0:
        voted = voting(
            [(float(r[0]), float(r[1])) for r in rows], segs.double().tolist(), scores.double().tolist(), voting_thresh
        )
        rows = [(v[0], v[1], r[2], r[3]) for v, r in zip(voted, rows)]
    rows = sorted(rows, key=lambda r: -float(r[2]))[: min(max_seg_num, len(rows))]
    return [[float(r[0]), float(r[1])] for r in rows], [float(r[2]) for r in rows], [r[3] for r in rows]


@pytest.fixture
def ref():
    """The brute-force reference functions of this file."""
    return types.SimpleNamespace(hard_nms=hard_nms, soft_nms=soft_nms, voting=voting, batched_nms=batched_nms)
