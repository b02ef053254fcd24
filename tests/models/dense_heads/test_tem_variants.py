"""G-TAD's and TSI's temporal evaluation heads: upstream keys, hand-checkable forwards and losses.

Error model: float32 sums of ``n`` products are within ``n 2^-24 sum|terms|`` of exact; the losses are
sums of at most 4 logs of float32 probabilities, within ``8 * 2^-24 * sum|terms|`` of the float64 hand
value (the bounds used below).
"""
import math

import pytest
import torch
import torch.nn.functional as F

from opentad.registry import HEADS, build

U32 = 2.0**-24


def gcnext_keys(prefix, c, width=128):
    shapes = {}
    for name, shape in (("tconvs.0", (width, c, 1)), ("tconvs.2", (width, 4, 3)), ("tconvs.4", (c, width, 1)),
                        ("sconvs.0", (width, 2 * c, 1, 1)), ("sconvs.2", (width, 4, 1, 1)),
                        ("sconvs.4", (c, width, 1, 1))):
        shapes[f"{prefix}.{name}.weight"] = shape
        shapes[f"{prefix}.{name}.bias"] = (shape[0],)
    return shapes


@pytest.mark.parametrize("shared", [False, True])
def test_gcnext_head_upstream_keys(shared):
    head = build(dict(type="GCNextTemporalEvaluationHead", in_channels=8, num_classes=2, shared=shared,
                      loss=dict(pos_thresh=0.5, gt_type=["startness", "endness"])), HEADS)
    if shared:  # tem = Sequential(GCNeXt, ConvModule(C, 2, 1))
        expected = {**gcnext_keys("tem.0", 8), "tem.1.conv.weight": (2, 8, 1), "tem.1.conv.bias": (2,)}
    else:  # tem = ModuleList of Sequential(GCNeXt, ConvModule(C, 1, 1))
        expected = {}
        for i in range(2):
            expected.update(gcnext_keys(f"tem.{i}.0", 8))
            expected.update({f"tem.{i}.1.conv.weight": (1, 8, 1), f"tem.{i}.1.conv.bias": (1,)})
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == expected
    with pytest.raises(ValueError, match="conv_cfg"):  # upstream's G-TAD head has no conv_cfg
        build(dict(type="GCNextTemporalEvaluationHead", in_channels=8, num_classes=2, conv_cfg=dict(groups=4),
                   loss=dict(pos_thresh=0.5, gt_type=["startness", "endness"])), HEADS)


def test_gcnext_head_branch_is_graph_block_then_1x1():
    # with the GCNeXt weights zero the block is relu(x), so each map is w . relu(x) + b
    head = build(dict(type="GCNextTemporalEvaluationHead", in_channels=4, num_classes=2,
                      loss=dict(pos_thresh=0.5, gt_type=["startness", "endness"])), HEADS)
    with torch.no_grad():
        for name, p in head.named_parameters():
            if ".0." in name:
                p.zero_()
    x = torch.randn(2, 4, 6)
    out = head.forward_test(x, None)
    for i in range(2):
        conv = head.tem[i][1].conv
        expected = torch.einsum("c,bct->bt", conv.weight[0, :, 0], x.relu()) + conv.bias
        bound = 4 * U32 * (torch.einsum("c,bct->bt", conv.weight[0, :, 0].abs(), x.abs()) + conv.bias.abs())
        assert ((out[:, i] - expected).abs() <= bound).all()


def local_global_keys(c):
    shapes = {"local_conv1d_s": (256, c // 4, 3), "local_conv1d_s_out": (1, 256, 1),
              "local_conv1d_e": (256, c // 4, 3), "local_conv1d_e_out": (1, 256, 1),
              "x1_1": (128, c // 4, 3), "x2_1": (256, 32, 3), "x3_1": (512, 64, 3), "x4_1": (1024, 128, 3),
              "up41_to_32": (1024, 128, 2), "x3_2": (512, 256, 3), "up31_to_22": (512, 64, 2),
              "x2_2": (256, 128, 3), "up32_to_23": (512, 64, 2), "x2_3": (256, 192, 3),
              "up21_to_12": (256, 32, 2), "x1_2": (128, 64, 3), "up22_to_13": (256, 32, 2),
              "x1_3": (128, 96, 3), "up23_to_14": (256, 32, 2), "x1_4": (128, 128, 3),
              "global_s_out": (1, 128, 1), "global_e_out": (1, 128, 1)}
    out = {}
    for name, shape in shapes.items():  # ConvTranspose1d weights are [in, out / groups, k]
        bias = shape[1] * 4 if name.startswith("up") else shape[0]
        out.update({f"{name}.weight": shape, f"{name}.bias": (bias,)})
    return out


def make_local_global(**kwargs):
    return build(dict(type="LocalGlobalTemporalEvaluationHead", in_channels=8, loss=dict(pos_thresh=0.5), **kwargs),
                 HEADS)


def test_local_global_upstream_keys():
    head = make_local_global()
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == local_global_keys(8)
    assert make_local_global(padding=1).up41_to_32.output_padding == (1,)


def reference_global(w, x):
    """Upstream's nested U-Net written out from its paths: (output, inputs concatenated, up-conv of a node)."""
    conv = lambda n, v: F.conv1d(v, w[f"{n}.weight"], w[f"{n}.bias"], padding=1, groups=4)  # noqa: E731
    up = lambda n, v: F.conv_transpose1d(v, w[f"{n}.weight"], w[f"{n}.bias"], stride=2, groups=4)  # noqa: E731
    pool = lambda v: F.max_pool1d(v, 2)  # noqa: E731
    node = {"x1_1": conv("x1_1", x)}
    node["x2_1"] = conv("x2_1", pool(node["x1_1"]))
    node["x3_1"] = conv("x3_1", pool(node["x2_1"]))
    node["x4_1"] = conv("x4_1", pool(node["x3_1"]))
    for out, skips, (upconv, source) in [
        ("x3_2", ["x3_1"], ("up41_to_32", "x4_1")),
        ("x2_2", ["x2_1"], ("up31_to_22", "x3_1")),
        ("x2_3", ["x2_1", "x2_2"], ("up32_to_23", "x3_2")),
        ("x1_2", ["x1_1"], ("up21_to_12", "x2_1")),
        ("x1_3", ["x1_1", "x1_2"], ("up22_to_13", "x2_2")),
        ("x1_4", ["x1_1", "x1_2", "x1_3"], ("up23_to_14", "x2_3")),
    ]:
        node[out] = conv(out, torch.cat([node[s] for s in skips] + [up(upconv, node[source])], dim=1))
    return node["x1_4"]


def test_local_global_forward_matches_upstream_paths():
    torch.manual_seed(0)
    head = make_local_global().double()
    w = {k: v for k, v in head.state_dict().items()}
    x = torch.randn(2, 8, 16, dtype=torch.float64)
    local_s, local_e, global_s, global_e = head.forward_test(x, None)
    feat = reference_global(w, x)
    out_conv = lambda n, v: F.conv1d(v, w[f"{n}.weight"], w[f"{n}.bias"])[:, 0]  # noqa: E731
    local = lambda n, v: out_conv(f"{n}_out", F.conv1d(v, w[f"{n}.weight"], w[f"{n}.bias"], padding=1, groups=4).relu())  # noqa: E731,E501
    # float64 on both sides, same operations in another summation order: at most 9 layers of fan-in <= 512,
    # each within 512 u |W||v| of exact; the envelope is the global path run on |W| and |x|
    envelope = out_conv("global_s_out", reference_global({k: v.abs() for k, v in w.items()}, x.abs())).abs().max()
    tol = 2 * 9 * 512 * 2.0**-53 * envelope
    for got, ref in [(local_s, local("local_conv1d_s", x)), (local_e, local("local_conv1d_e", x)),
                     (global_s, out_conv("global_s_out", feat)), (global_e, out_conv("global_e_out", feat))]:
        assert got.shape == (2, 16)
        assert (got - ref).abs().max() <= tol


def test_local_global_loss_by_hand():
    # all weights zero: each map is the constant sigmoid(bias). Ground truth [2, 20] in T = 8: the start
    # window [0.5, 3.5] covers steps 1 and 2 (positives), the end window [18.5, 21.5] none.
    # Balanced BCE of a constant p: with both classes 0.5 (-log p - log(1 - p)); without positives -log(1 - p).
    head = make_local_global()
    probs = dict(local_conv1d_s_out=0.3, local_conv1d_e_out=0.2, global_s_out=0.6, global_e_out=0.1)
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        for name, prob in probs.items():
            getattr(head, name).bias.fill_(math.log(prob / (1 - prob)))
    losses, proposals = head.forward_train(torch.randn(1, 8, 8), None, [torch.tensor([[2.0, 20.0]])])
    both = lambda p: 0.5 * (-math.log(p) - math.log(1 - p))  # noqa: E731
    terms = [0.5 * both(0.3), 0.5 * -math.log(1 - 0.2), 0.5 * both(0.6), 0.5 * -math.log(1 - 0.1)]
    assert proposals is None and set(losses) == {"loss_tem"}
    # plus the float32 bias: logit rounded by |logit| u, sigmoid' <= 1/4, the sigmoid itself 2u; a log moves
    # by its argument's error over min(p, 1 - p), halved by the 0.5 of the loss
    biases = sum((abs(math.log(p / (1 - p))) / 4 + 2) * U32 / min(p, 1 - p) for p in probs.values())
    bound = 8 * U32 * sum(abs(t) for t in terms) + biases
    assert abs(losses["loss_tem"].item() - sum(terms)) <= bound


def test_local_global_gradients_reach_every_parameter():
    torch.manual_seed(0)
    head = make_local_global()
    losses, _ = head.forward_train(torch.randn(2, 8, 16), None, [torch.tensor([[2.0, 9.0]]), torch.tensor([[0.0, 4.0]])])
    losses["loss_tem"].backward()
    assert [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []
