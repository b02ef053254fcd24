"""SGPBlock: upstream's keys and shapes, its formula against a float64 reference, masks, downsampling."""
import pytest
import torch
import torch.nn.functional as F

from opentad.models.bricks.sgp import SGPBlock, sgp_window_size

U32 = 2.0**-24  # float32 unit roundoff


def _block_keys(c, hidden, kernel, window, drop_path):
    keys = {"ln.weight": (c,), "ln.bias": (c,), "gn.weight": (c,), "gn.bias": (c,)}
    for name, size in (("psi", kernel), ("fc", 1), ("convw", kernel), ("convkw", window), ("global_fc", 1)):
        keys[f"{name}.weight"] = (c, 1, size)
        keys[f"{name}.bias"] = (c,)
    keys.update({"mlp.0.weight": (hidden, c, 1), "mlp.0.bias": (hidden,), "mlp.2.weight": (c, hidden, 1),
                 "mlp.2.bias": (c,)})
    if drop_path:
        keys.update({"drop_path_out.scale": (1, c, 1), "drop_path_mlp.scale": (1, c, 1)})
    return keys


@pytest.mark.parametrize("kernel, k, window", [(1, 5, 11), (3, 1.5, 7), (1, 1.5, 3), (5, 1.5, 9), (3, 2, 9)])
def test_window_size_is_upstreams_rounding(kernel, k, window):
    # round((w + 1) k), plus one when even
    assert sgp_window_size(kernel, k) == window


def test_keys_and_shapes_are_upstreams():
    stem = SGPBlock(32, kernel_size=1, n_hidden=48, k=5, init_conv_vars=0)
    assert {k: tuple(v.shape) for k, v in stem.state_dict().items()} == _block_keys(32, 48, 1, 11, False)
    branch = SGPBlock(32, kernel_size=3, n_ds_stride=2, n_hidden=48, k=1.5, path_pdrop=0.1)
    assert {k: tuple(v.shape) for k, v in branch.state_dict().items()} == _block_keys(32, 48, 3, 7, True)
    avg = SGPBlock(32, n_ds_stride=2, downsample_type="avg")
    extra = set(avg.state_dict()) - set(_block_keys(32, 128, 3, 7, False))
    assert extra == {"downsample.1.weight", "downsample.1.bias"}


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="odd"):
        SGPBlock(16, kernel_size=2)
    with pytest.raises(ValueError, match="downsample_type"):
        SGPBlock(16, n_ds_stride=2, downsample_type="conv")


def _reference(block, x, mask):
    """The SGP formula written out in float64 from the block's weights."""
    p = {k: v.double() for k, v in block.state_dict().items()}
    x = x.double()
    if block.stride > 1:
        x = F.max_pool1d(x, 3, 2, 1)
    m = mask[:, ::block.stride].double()[:, None]  # nearest sampling keeps step 2i
    u = F.layer_norm(x.transpose(1, 2), (x.shape[1],), p["ln.weight"], p["ln.bias"], 1e-5).transpose(1, 2)

    def dw(name, t):
        w = p[f"{name}.weight"]
        return F.conv1d(t, w, p[f"{name}.bias"], padding=w.shape[-1] // 2, groups=w.shape[0])

    phi = torch.relu(dw("global_fc", u.mean(-1, keepdim=True)))
    out = dw("fc", u) * phi + (dw("convw", u) + dw("convkw", u)) * dw("psi", u) + u
    s_out = p.get("drop_path_out.scale", torch.ones(()).double())
    s_mlp = p.get("drop_path_mlp.scale", torch.ones(()).double())
    y = x * m + s_out * out
    g = F.group_norm(y, 16, p["gn.weight"], p["gn.bias"], 1e-5)
    h = F.gelu(F.conv1d(g, p["mlp.0.weight"], p["mlp.0.bias"]))
    return y + s_mlp * F.conv1d(h, p["mlp.2.weight"], p["mlp.2.bias"]), m[:, 0].bool()


@pytest.mark.parametrize("stride, path_pdrop", [(1, 0.0), (2, 0.1)])
def test_forward_matches_the_formula(stride, path_pdrop):
    """Error model: every output is a few (<= 8) stages, each an inner product of at most n = max(C, H, w)
    float32 terms; each stage's rounding is bounded by n u times the magnitude of what it sums, so
    |ours - reference| <= 8 n u max(1, max|intermediate|), the intermediates bounded by 10 max|reference| here."""
    torch.manual_seed(0)
    c, hidden = 32, 48
    block = SGPBlock(c, kernel_size=3, n_ds_stride=stride, n_hidden=hidden, k=1.5, path_pdrop=path_pdrop,
                     init_conv_vars=0.2)
    with torch.no_grad():
        for name, param in block.named_parameters():
            if "scale" in name or "norm" in name or name.startswith(("ln.", "gn.")):
                param.add_(0.3 * torch.randn_like(param))  # no identity norms or unit scales
    block.eval()  # drop path is the identity
    x, mask = torch.randn(2, c, 16), torch.ones(2, 16, dtype=torch.bool)
    mask[1, 11:] = False
    y, out_mask = block(x, mask)
    ref, ref_mask = _reference(block, x, mask)
    assert torch.equal(out_mask, ref_mask) and y.shape == (2, c, 16 // stride)
    bound = 8 * max(c, hidden) * U32 * 10 * max(1.0, ref.abs().max().item())
    assert (y.double() - ref).abs().max().item() <= bound


def test_zero_init_reduces_the_sgp_branch_to_the_normalised_input():
    # init_conv_vars=0 (upstream's THUMOS value): all five convs are zero, so out = LN(x), and their gradients
    # are exactly zero (relu'(0) = 0, the products' other factors are zero): upstream's recipe never moves them
    torch.manual_seed(0)
    block = SGPBlock(16, kernel_size=1, n_hidden=32, k=5, init_conv_vars=0)
    x, mask = torch.randn(1, 16, 8), torch.ones(1, 8, dtype=torch.bool)
    mask[0, 6:] = False
    y, _ = block(x, mask)
    u = F.layer_norm(x.transpose(1, 2), (16,), block.ln.weight, block.ln.bias, 1e-5).transpose(1, 2)
    skip = x * mask[:, None] + u
    torch.testing.assert_close(y, skip + block.mlp(block.gn(skip)), rtol=0, atol=0)
    y.square().sum().backward()
    for name in ("psi", "fc", "convw", "convkw", "global_fc"):
        conv = getattr(block, name)
        assert torch.count_nonzero(conv.weight.grad) == 0 and torch.count_nonzero(conv.bias.grad) == 0, name
    assert torch.count_nonzero(block.mlp[0].weight.grad) > 0 and torch.count_nonzero(block.ln.weight.grad) > 0


def test_padded_steps_are_not_zeroed_as_upstream():
    # only the skip term is masked: the normalised padded steps reach the output, and the temporal mean
    # of the global branch runs over them, so what the padding holds changes valid outputs
    torch.manual_seed(0)
    block = SGPBlock(16, kernel_size=3, n_hidden=32, init_conv_vars=0.5)
    x, mask = torch.randn(1, 16, 8), torch.ones(1, 8, dtype=torch.bool)
    mask[0, 6:] = False
    y, _ = block(x, mask)
    assert y[..., 6:].abs().sum() > 0
    x2 = x.clone()
    x2[..., 6:] = 5.0
    y2, _ = block(x2, mask)
    assert not torch.allclose(y[..., :4], y2[..., :4])


def test_odd_length_with_max_pooling_raises():
    block = SGPBlock(16, n_ds_stride=2)
    with pytest.raises(ValueError, match="multiple"):
        block(torch.randn(1, 16, 7), torch.ones(1, 7, dtype=torch.bool))
