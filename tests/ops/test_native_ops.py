"""Compiled CPU ops against their pure-PyTorch fallbacks; behaviour when they are missing."""

import importlib
import sys

import pytest
import torch

import opentad.ops as ops
from opentad.models.roi_heads.roi_extractors import align1d, boundary_max_pooling
from opentad.models.utils.post_processing import batched_nms
from opentad.ops.__main__ import main as ops_main


def random_detections(seed, num=200, num_classes=3):
    gen = torch.Generator().manual_seed(seed)
    start = torch.rand(num, generator=gen) * 100
    segs = torch.stack([start, start + torch.rand(num, generator=gen) * 20 + 0.5], dim=1)
    return segs, torch.rand(num, generator=gen), torch.randint(0, num_classes, (num,), generator=gen)


NMS_CONFIGS = [
    dict(use_soft_nms=False, iou_threshold=0.4, min_score=0.1, max_seg_num=50),
    dict(use_soft_nms=True, sigma=0.5, min_score=0.001, max_seg_num=200),
    dict(use_soft_nms=True, sigma=0.3, min_score=0.2, multiclass=False, voting_thresh=0.7),
    dict(use_soft_nms=True, method=3, t1=0.5, t2=0.01, sigma=0.4, min_score=0.05, multiclass=False),
    dict(use_soft_nms=True, method=1, iou_threshold=0.3, min_score=0.1),
    dict(use_soft_nms=True, method=0, iou_threshold=0.3, min_score=0.1, multiclass=False),
]


@pytest.mark.parametrize("cfg", NMS_CONFIGS)
def test_compiled_nms_matches_fallback(require_op, cfg):
    require_op("nms_1d_cpu")
    for seed in range(3):
        segs, scores, labels = random_detections(seed)
        fallback = batched_nms(segs, scores, labels, backend="torch", **cfg)
        compiled = batched_nms(segs, scores, labels, backend="compiled", **cfg)
        assert torch.equal(compiled[0], fallback[0]) and torch.equal(compiled[2], fallback[2])
        # the Gaussian weight: C expf vs float64 exp rounded; a few ulp at most
        torch.testing.assert_close(compiled[1], fallback[1], rtol=1e-6, atol=0)


def random_rois(gen, num, batch, length, dtype):
    start = torch.rand(num, generator=gen, dtype=dtype) * (length + 6) - 4
    size = torch.rand(num, generator=gen, dtype=dtype) * length * 0.7
    return torch.stack([torch.randint(0, batch, (num,), generator=gen).to(dtype), start, start + size], dim=1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("ratio", [0, 3])
def test_compiled_align1d_matches_fallback(require_op, dtype, ratio):
    require_op("align1d_cpu")
    gen = torch.Generator().manual_seed(ratio)
    x = torch.randn(3, 5, 40, generator=gen, dtype=dtype, requires_grad=True)
    rois = random_rois(gen, 30, 3, 40, dtype)
    fallback = align1d(x, rois, 8, ratio, backend="torch")
    compiled = align1d(x, rois, 8, ratio, backend="compiled")
    assert torch.equal(compiled, fallback)
    grad = torch.randn(fallback.shape, generator=gen, dtype=dtype)
    (g_fallback,) = torch.autograd.grad(fallback, x, grad)
    (g_compiled,) = torch.autograd.grad(compiled, x, grad)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(g_compiled, g_fallback, rtol=tol, atol=tol)


def test_compiled_align1d_gradcheck(require_op):
    require_op("align1d_cpu")
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 2, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = random_rois(gen, 6, 2, 12, torch.float64)
    assert torch.autograd.gradcheck(lambda a: align1d(a, rois, 4, 0, backend="compiled"), (x,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_compiled_boundary_pooling_matches_fallback(require_op, dtype):
    require_op("boundary_pooling_cpu")
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(0, 7, (2, 6, 30), generator=gen).to(dtype).requires_grad_(True)  # with ties
    segments = (torch.rand(2, 25, 4, generator=gen) * 34 - 2).to(dtype)
    fallback = boundary_max_pooling(x, segments, backend="torch")
    compiled = boundary_max_pooling(x, segments, backend="compiled")
    assert torch.equal(compiled, fallback)
    grad = torch.randn(fallback.shape, generator=gen).to(dtype)
    (g_fallback,) = torch.autograd.grad(fallback, x, grad)
    (g_compiled,) = torch.autograd.grad(compiled, x, grad)
    # bfloat16 sums of several gradients round differently (per add vs once)
    tol = dict(rtol=0.05, atol=0.05) if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(g_compiled, g_fallback, **tol)


def test_compiled_boundary_pooling_gradcheck(require_op):
    require_op("boundary_pooling_cpu")
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    segments = torch.rand(1, 9, 4, generator=gen, dtype=torch.float64) * 18 - 1
    assert torch.autograd.gradcheck(lambda a: boundary_max_pooling(a, segments, backend="compiled"), (x,))


def test_compiled_backend_names_the_build_command_when_missing(hidden_ops):
    with pytest.raises(ImportError, match="nms_1d_cpu") as info:
        batched_nms(torch.zeros(2, 2), torch.ones(2), torch.zeros(2), backend="compiled")
    assert "OPENTAD_EXT=all pip install -e ." in str(info.value)
    with pytest.raises(ImportError, match="align1d_cpu.*OPENTAD_EXT=all pip install -e"):
        align1d(torch.zeros(1, 2, 5), torch.tensor([[0.0, 0.0, 2.0]]), 2, backend="compiled")
    with pytest.raises(ImportError, match="boundary_pooling_cpu.*OPENTAD_EXT=all pip install -e"):
        boundary_max_pooling(torch.zeros(1, 2, 5), torch.zeros(1, 1, 4), backend="compiled")
    # auto quietly falls back
    assert batched_nms(torch.zeros(2, 2), torch.ones(2), torch.zeros(2))[0].shape == (2, 2)


def test_roi_heads_import_and_run_without_extensions(hidden_ops, monkeypatch):
    from opentad.registry import ROI_HEADS, build

    # import the package afresh, registering its classes into a clean table
    for name in [m for m in sys.modules if m.startswith("opentad.models.roi_heads")]:
        monkeypatch.delitem(sys.modules, name)
    ours = {k: v for k, v in ROI_HEADS._module_dict.items() if not v.__module__.startswith("opentad.models.roi_heads")}
    monkeypatch.setattr(ROI_HEADS, "_module_dict", ours)
    importlib.import_module("opentad.models.roi_heads")
    assert ops._CACHE == {}  # nothing tried to load a compiled op at import time
    head = build(dict(type="AFSDRefineHead", in_channels=512, num_classes=3), ROI_HEADS)
    feat = torch.randn(1, 512, 8)
    segments = torch.tensor([[[0.0, 2.0, 3.0, 5.0]] * 8])
    out = head.forward_test(feat, [feat], [feat], [segments], [segments])
    assert out[2].shape == (1, 8, 2) and out[3].shape == (1, 8, 3)
    assert set(ops._CACHE) == {"boundary_pooling_cpu"} and ops._CACHE["boundary_pooling_cpu"][0] is None


def test_python_m_opentad_ops_lists_every_op(capsys, hidden_ops):
    assert ops_main([]) == 0
    out = capsys.readouterr().out
    for spec in ops.OP_SPECS:
        assert spec.name in out
    assert "fallback" in out and "OPENTAD_EXT=all" in out
    assert ops_main(["--require", "nms_1d_cpu"]) == 1
    with pytest.raises(SystemExit):
        ops_main(["--require", "no_such_op"])


def test_select_op_validates_backend():
    with pytest.raises(ValueError, match="backend"):
        ops.select_op("nms_1d_cpu", "gpu")
    with pytest.raises(KeyError, match="known ops"):
        ops.load_op("nms_2d")
