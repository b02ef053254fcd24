"""mamba_ssm's CUDA selective scan and the PyTorch fallback agree on the GPU (skipped without CUDA or mamba_ssm).

Error model (tests/models/bricks/test_selective_scan.py): each float32 implementation is within
``u (k_term + L + N + 2 E L) M`` of the exact value (the kernel's ``exp2f`` and its block-parallel
scan stay within those roundings: a few ulp per factor, at most ``L`` factors and additions per
term), so the two differ by at most twice that; ``error_bound`` already doubles it, and the kernel's
fast-math exponential (relative error up to 2 ulp instead of 1/2) is covered by a further factor 4.
"""
import pytest
import torch

from opentad.models.bricks.selective_scan import cuda_selective_scan, selective_scan, selective_scan_chunked
from tests.models.bricks.test_selective_scan import UNIT, error_bound, make_inputs

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(cuda_selective_scan() is None, reason="needs mamba_ssm (docs/install.md)"),
]


@pytest.mark.parametrize("groups", [None, 2])
@pytest.mark.parametrize("length", [37, 2304])
def test_kernel_matches_fallback(groups, length):
    inputs = make_inputs(batch=2, dim=64, length=length, n_state=16, groups=groups, dtype=torch.float32)
    cuda = {k: v.cuda() for k, v in inputs.items()}
    kernel = selective_scan(**cuda, delta_softplus=True)
    fallback = selective_scan_chunked(**cuda, delta_softplus=True)
    bound = 4 * error_bound(inputs, UNIT[torch.float32])
    assert (kernel.double().cpu() - fallback.double().cpu()).abs().le(bound).all()
