"""BMNExtractor's sparse sampling on a GPU (cuSPARSE) against the float64 dense reference (skipped without CUDA).

Same error model as tests/models/roi_heads/roi_extractors/test_bmn_extractor.py: the float32 forward is within
``(K + 2) u32`` of the exact map relative to the absolute-value map (``K`` terms per output), with TF32 off so
that every product is a float32 one; float64 gradients within ``u32 + 2 (K + 2) u64`` (the mask is float32).
"""
import pytest
import torch

from tests.models.roi_heads.roi_extractors.test_bmn_extractor import (
    U32,
    U64,
    _extractor,
    _reference_map,
    brute_force_mask,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _no_tf32():
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("tscale, dscale", [(16, 9), (128, 64)])
def test_cuda_forward_is_the_dense_product(tscale, dscale):
    module = _extractor(tscale, dscale)
    x = torch.randn(2, 5, tscale)
    ours = module.cuda().boundary_matching(x.cuda()).double().cpu()
    ref, absolute = _reference_map(module.cpu(), x.double(), brute_force_mask(tscale, dscale, 4, 3, 0.5))
    assert ((ours - ref).abs() <= (5 * 4 * tscale + 2) * U32 * absolute).all()


def test_cuda_gradients_match_the_dense_reference_in_float64():
    tscale, dscale = 12, 12
    module = _extractor(tscale, dscale, torch.float64)
    mask = brute_force_mask(tscale, dscale, 4, 3, 0.5).float().double()
    x = torch.randn(2, 5, tscale, dtype=torch.float64)
    grad_out = torch.randn(2, 7, dscale, tscale, dtype=torch.float64)
    gpu = module.cuda()
    xc = x.cuda().requires_grad_()
    (gpu.boundary_matching(xc) * grad_out.cuda()).sum().backward()
    ours_x, ours_w = xc.grad.cpu(), gpu.conv3d[0].weight.grad.cpu()
    cpu = gpu.cpu()
    cpu.zero_grad()
    xr = x.clone().requires_grad_()
    ref, _ = _reference_map(cpu, xr, mask)
    (ref * grad_out).sum().backward()
    w = cpu.conv3d[0].weight.detach().squeeze(-1)
    k = U32 + 2 * (5 * 4 * tscale + 2) * U64
    bound_x = k * torch.einsum("brdt,rhn,sndt->bhs", grad_out.abs(), w.abs(), mask.abs())
    bound_w = k * torch.einsum("brdt,bhs,sndt->rhn", grad_out.abs(), x.abs(), mask.abs())
    assert ((ours_x - xr.grad).abs() <= bound_x + 1e-300).all()
    assert ((ours_w - cpu.conv3d[0].weight.grad).squeeze(-1).abs() <= bound_w + 1e-300).all()
