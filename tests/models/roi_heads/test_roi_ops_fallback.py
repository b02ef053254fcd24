"""Pure-PyTorch align1d and boundary max pooling against brute-force loops."""

import math

import pytest
import torch

from opentad.models.roi_heads.roi_extractors import align1d, boundary_max_pooling


def ref_align1d(x, rois, pooled, ratio):
    """Literal loops in Python floats (float64), from the op's description."""
    _, channels, length = x.shape
    values = x.tolist()
    out = torch.zeros(rois.shape[0], channels, pooled, dtype=torch.float64)
    grad_weights = []  # (n, pt, b, position, weight) for the backward reference
    for n, (b, start, end) in enumerate(rois.tolist()):
        b = int(b)
        width = end - start
        width = width if width > 1 else 1.0
        bin_size = width / pooled
        grid = ratio if ratio > 0 else math.ceil(bin_size)
        for pt in range(pooled):
            taps = []
            for it in range(grid):
                t = (start + pt * bin_size) + (it + 0.5) * bin_size / grid
                if t < -1 or t > length:
                    continue
                t = max(t, 0.0) if t > 0 else 0.0
                lo = int(t)
                if lo >= length - 1:
                    lo = hi = length - 1
                    t = float(lo)
                else:
                    hi = lo + 1
                w_hi = t - lo
                taps.append((lo, 1 - w_hi, hi, w_hi))
            for c in range(channels):
                acc = 0.0
                for lo, w_lo, hi, w_hi in taps:
                    acc += w_lo * values[b][c][lo] + w_hi * values[b][c][hi]
                out[n, c, pt] = acc / grid
            for lo, w_lo, hi, w_hi in taps:
                grad_weights += [(n, pt, b, lo, w_lo / grid), (n, pt, b, hi, w_hi / grid)]
    return out, grad_weights


def ref_boundary_pooling(x, segments):
    batch, channels, length = x.shape
    values = x.tolist()
    out = torch.zeros(batch, channels, segments.shape[1], dtype=x.dtype)
    where = torch.zeros(batch, channels, segments.shape[1], dtype=torch.long)
    for n in range(batch):
        for c in range(channels):
            region = 0 if c < channels // 2 else 1
            for k in range(segments.shape[1]):
                bounds = [int(v) for v in segments[n, k, 2 * region : 2 * region + 2].tolist()]
                left, right = (min(max(v, 0), length - 1) for v in bounds)
                arg, best = left, values[n][c][left]
                for i in range(left + 1, right + 1):
                    if values[n][c][i] > best:
                        arg, best = i, values[n][c][i]
                out[n, c, k], where[n, c, k] = x[n, c, arg], arg
    return out, where


def random_rois(gen, num, batch, length):
    start = torch.rand(num, generator=gen, dtype=torch.float64) * (length + 6) - 4
    size = torch.rand(num, generator=gen, dtype=torch.float64) * length * 0.8
    size[:3] = torch.tensor([0.2, 0.0, 2.5], dtype=torch.float64)  # malformed (< 1) and short rois
    batch_idx = torch.randint(0, batch, (num,), generator=gen).double()
    return torch.stack([batch_idx, start, start + size], dim=1)


@pytest.mark.parametrize("ratio", [0, 2])
def test_align1d_fallback_matches_brute_force(ratio):
    gen = torch.Generator().manual_seed(ratio)
    x = torch.randn(2, 3, 12, generator=gen, dtype=torch.float64)
    rois = random_rois(gen, 9, 2, 12)
    out = align1d(x, rois, 4, ratio, backend="torch")
    expected, taps = ref_align1d(x, rois, 4, ratio)
    assert torch.equal(out, expected)
    # backward: every tap passes grad * weight / grid to its position
    x.requires_grad_(True)
    grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    align1d(x, rois, 4, ratio, backend="torch").backward(grad_out)
    expected_grad = torch.zeros_like(x)
    for n, pt, b, pos, weight in taps:
        expected_grad[b, :, pos] += grad_out[n, :, pt] * weight
    torch.testing.assert_close(x.grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_align1d_fallback_gradcheck():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = random_rois(gen, 5, 2, 9)
    assert torch.autograd.gradcheck(lambda a: align1d(a, rois, 3, 0, backend="torch"), (x,))


def test_align1d_hand_worked():
    x = torch.arange(10, dtype=torch.float64).view(1, 1, 10)
    # roi [2, 6], 2 bins of width 2, 2 samples each at 2.5, 3.5 | 4.5, 5.5: a ramp gives their mean
    out = align1d(x, torch.tensor([[0.0, 2.0, 6.0]], dtype=torch.float64), 2, 0, backend="torch")
    assert out.flatten().tolist() == [3.0, 5.0]


def test_align1d_rejects_bad_batch_index():
    with pytest.raises(ValueError, match="batch indices"):
        align1d(torch.zeros(1, 2, 5), torch.tensor([[1.0, 0.0, 2.0]]), 2)


def random_segments(gen, batch, num, length):
    seg = torch.rand(batch, num, 4, generator=gen, dtype=torch.float64) * (length + 4) - 2
    seg[0, 0] = torch.tensor([3.7, 1.2, -0.5, -0.2])  # right < left; negative bounds
    return seg


def test_boundary_pooling_fallback_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (2, 6, 13), generator=gen).double()  # many ties
    x[1, 2, 4] = float("nan")
    segments = random_segments(gen, 2, 7, 13)
    out = boundary_max_pooling(x, segments, backend="torch")
    expected, where = ref_boundary_pooling(x, segments)
    torch.testing.assert_close(out, expected, equal_nan=True)
    x.requires_grad_(True)
    grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    boundary_max_pooling(x, segments, backend="torch").backward(grad_out)
    expected_grad = torch.zeros_like(x).scatter_add_(2, where, grad_out)
    torch.testing.assert_close(x.grad, expected_grad)


def test_boundary_pooling_fallback_gradcheck_and_hand_worked():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 20, generator=gen, dtype=torch.float64, requires_grad=True)
    segments = random_segments(gen, 1, 6, 20)
    assert torch.autograd.gradcheck(lambda a: boundary_max_pooling(a, segments, backend="torch"), (x,))
    ramp = torch.tensor([[[0.0, 5.0, 1.0, 7.0, 2.0], [9.0, 1.0, 1.0, 3.0, 0.0]]])
    seg = torch.tensor([[[0.0, 2.0, 2.9, 4.0]]])  # start region [0, 2], end region [2, 4]
    assert boundary_max_pooling(ramp, seg, backend="torch").flatten().tolist() == [5.0, 3.0]


def test_boundary_pooling_rejects_odd_channels():
    with pytest.raises(ValueError, match="C even"):
        boundary_max_pooling(torch.zeros(1, 3, 5), torch.zeros(1, 2, 4))
