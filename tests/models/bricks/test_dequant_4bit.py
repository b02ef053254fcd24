"""4-bit dequantization on CPU: what the NF4 / FP4 formats define, for every weight shape.

bitsandbytes 0.50's AVX-512 CPU kernel scales blocks that straddle rows with another block's absmax;
these tests fail with it on AVX-512 CPUs (shapes whose last dimension is not a multiple of 64)."""
import pytest
import torch

bnb_functional = pytest.importorskip("bitsandbytes.functional")

from opentad.models.bricks.dequant_4bit import dequantize_4bit  # noqa: E402

# NF4 levels as published with QLoRA (Dettmers et al. 2023, appendix E).
NF4_LEVELS = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
], dtype=torch.float64)  # fmt: skip
SHAPES = [(64, 16), (384, 96), (10, 96), (96, 384), (3, 40), (1000,)]  # first three straddle rows


def _blocks(t, blocksize=64):
    flat = t.reshape(-1).double()
    pad = -flat.numel() % blocksize
    return torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, blocksize), flat.numel()


@pytest.mark.parametrize("shape", SHAPES)
def test_nf4_is_the_nearest_level_times_the_block_absmax(shape):
    torch.manual_seed(0)
    weight = torch.randn(shape) * 0.05
    packed, state = bnb_functional.quantize_4bit(weight, blocksize=64, quant_type="nf4", compress_statistics=False)
    out = dequantize_4bit(packed, state)
    assert out.shape == weight.shape and out.dtype == weight.dtype
    w, count = _blocks(weight)
    d, _ = _blocks(out)
    absmax = w.abs().amax(dim=1, keepdim=True)
    ratio, got = w / absmax, d / absmax
    # each value is a level (float32 rounding of level * absmax: a few eps) ...
    to_level = (got.reshape(-1, 1) - NF4_LEVELS).abs().min(dim=1).values
    assert to_level[:count].max() <= 4 * torch.finfo(torch.float32).eps
    # ... and the level nearest to w / absmax (ties aside)
    nearest = (ratio.reshape(-1, 1) - NF4_LEVELS).abs().min(dim=1).values
    assert ((got - ratio).abs().reshape(-1) - nearest)[:count].max() <= 1e-6


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_double_quantized_error_within_the_format_bound(shape, quant_type):
    """``|w - deq| <= g A + |A' - A|`` with ``g`` half the widest gap of the 4-bit code and the
    stored scale ``A'`` within half the widest gap of the 8-bit scale code times ``max|A - offset|``."""
    torch.manual_seed(1)
    weight = torch.randn(shape) * 0.05
    packed, state = bnb_functional.quantize_4bit(weight, blocksize=64, quant_type=quant_type, compress_statistics=True)
    out = dequantize_4bit(packed, state)
    w, count = _blocks(weight)
    d, _ = _blocks(out)
    absmax, stored = w.abs().amax(dim=1, keepdim=True), d.abs().amax(dim=1, keepdim=True)
    code = state.code.double().sort().values
    scale_code = state.state2.code.double().sort().values
    eps = torch.finfo(torch.float32).eps
    scale_bound = float((scale_code[1:] - scale_code[:-1]).max()) / 2 * (absmax - float(state.offset)).abs().max()
    assert ((stored - absmax).abs() <= scale_bound + 8 * eps * absmax).all()
    bound = float((code[1:] - code[:-1]).max()) / 2 * absmax + (stored - absmax).abs() + 8 * eps * absmax
    assert ((w - d).abs() <= bound).reshape(-1)[:count].all()


def test_equals_bitsandbytes_where_its_kernel_is_right():
    """Rows made of whole blocks: bitsandbytes' own CPU kernel is right there; same bits."""
    torch.manual_seed(2)
    for nested in (False, True):
        weight = torch.randn(96, 384) * 0.05
        packed, state = bnb_functional.quantize_4bit(weight, blocksize=64, quant_type="nf4", compress_statistics=nested)
        assert torch.equal(dequantize_4bit(packed, state), bnb_functional.dequantize_4bit(packed, state))
