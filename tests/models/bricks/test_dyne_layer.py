"""DyFADet's encoder layer against its formula written out here (float64 on both sides).

Both sides evaluate the same real numbers in another order (tolerance as in
test_dynamic_conv.py: sums of under 10^3 products of values below 10, divided by
norm scales above 1e-2, so the reordering error stays below ``ATOL = 1e-9``).
"""
import pytest
import torch

from opentad.models.bricks.dyne_layer import DynELayer, expanded_kernel_size

ATOL = 1e-9


def _depthwise(x, conv):
    """'same' depthwise conv by explicit taps."""
    k = conv.weight.shape[-1]
    out = torch.zeros_like(x) + conv.bias[None, :, None]
    t = x.shape[-1]
    for j in range(k):
        shift = j - k // 2
        for s in range(t):
            if 0 <= s + shift < t:
                out[:, :, s] += conv.weight[None, :, 0, j] * x[:, :, s + shift]
    return out


def _maxpool3s2(x):
    """Window ``[2t - 1, 2t + 1]`` clipped to the sequence (the padding never wins a max)."""
    t = x.shape[-1]
    return torch.stack([x[..., max(2 * i - 1, 0):2 * i + 2].max(dim=-1).values for i in range((t + 1) // 2)], -1)


def _reference(layer, x, mask):
    if layer.stride == 2:
        x = _maxpool3s2(x)
        m = _maxpool3s2(mask[:, None].double())
    else:
        m = mask[:, None].double()
    mean = x.mean(1, keepdim=True)
    y = (x - mean) / torch.sqrt(((x - mean) ** 2).mean(1, keepdim=True) + 1e-6)
    y = y * layer.ln.weight[None, :, None] + layer.ln.bias[None, :, None]
    phi = torch.relu(_depthwise(y.mean(-1, keepdim=True), layer.global_fc))
    z = _depthwise(y, layer.fc) * phi + torch.relu(_depthwise(y, layer.convw) + _depthwise(y, layer.convkw)) * \
        _depthwise(y, layer.psi) + y
    out = x * m + layer.drop_path_out.scale * z
    groups = out.view(out.shape[0], 16, -1, out.shape[-1])
    gmean = groups.mean(dim=(2, 3), keepdim=True)
    gvar = ((groups - gmean) ** 2).mean(dim=(2, 3), keepdim=True)
    gn = ((groups - gmean) / torch.sqrt(gvar + 1e-6)).view_as(out)
    gn = gn * layer.gn.weight[None, :, None] + layer.gn.bias[None, :, None]
    hidden = torch.einsum("hc,bct->bht", layer.mlp[0].weight[:, :, 0], gn) + layer.mlp[0].bias[None, :, None]
    hidden = torch.nn.functional.gelu(hidden)
    mlp = torch.einsum("ch,bht->bct", layer.mlp[2].weight[:, :, 0], hidden) + layer.mlp[2].bias[None, :, None]
    return out + layer.drop_path_mlp.scale * mlp, m[:, 0].bool()


@pytest.mark.parametrize("kernel_size, k, expected", [(1, 5, 11), (1, 1.5, 3), (3, 1.5, 7), (1, 1.25, 3), (3, 1.0, 5)])
def test_expanded_kernel_size(kernel_size, k, expected):
    # round((ks + 1) k), made odd; (1, 1.25): round(2.5) = 2 (half to even) -> 3
    assert expanded_kernel_size(kernel_size, k) == expected


@pytest.mark.parametrize("stride, kernel_size", [(1, 1), (2, 3)])
def test_layer_matches_formula(stride, kernel_size):
    torch.manual_seed(0)
    layer = DynELayer(32, kernel_size=kernel_size, n_ds_stride=stride, k=1.5, n_hidden=24, path_pdrop=0.1,
                      init_conv_vars=0.3).double().eval()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    x = torch.randn(2, 32, 11, dtype=torch.float64)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 6:] = False
    out, out_mask = layer(x, mask)
    expected, expected_mask = _reference(layer, x, mask)
    assert torch.equal(out_mask, expected_mask)
    assert out_mask[1].tolist() == ([True] * 4 + [False] * 2 if stride == 2 else mask[1].tolist())
    torch.testing.assert_close(out, expected, rtol=0, atol=ATOL)


def test_zero_init_dynamic_convs_get_exactly_zero_gradient():
    """Upstream's THUMOS config sets init_conv_vars=0: every path through the five dynamic convs is
    multiplied by another of them or passes relu at 0, so their gradients are exactly 0 (they never train)."""
    torch.manual_seed(0)
    layer = DynELayer(16, kernel_size=1, n_ds_stride=2, k=5, n_hidden=8, path_pdrop=0.1, init_conv_vars=0.0)
    out, _ = layer(torch.randn(2, 16, 10), torch.ones(2, 10, dtype=torch.bool))
    (out ** 2).sum().backward()
    for name, p in layer.named_parameters():
        dynamic = name.split(".")[0] in ("psi", "fc", "convw", "convkw", "global_fc")
        assert (p.grad.abs().sum() == 0) == dynamic, name
    layer = DynELayer(16, kernel_size=1, k=5, n_hidden=8, init_conv_vars=0.1)
    out, _ = layer(torch.randn(2, 16, 10), torch.ones(2, 10, dtype=torch.bool))
    out.sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in layer.parameters())


def test_even_kernel_is_rejected():
    with pytest.raises(ValueError, match="odd"):
        DynELayer(16, kernel_size=2)
