"""TSI detector: upstream's checkpoint keys, Xavier init (transposed convs too), geometric-mean boundaries.

The expected keys are written out from upstream's module structure (opentad/models/{projections/base,
dense_heads/tem_head,roi_heads/roi_extractors/bmn_extractor,roi_heads/proposal_head/pem_head}.py upstream):
``projection.convs.{i}.conv.*``, the LocalGlobalTemporalEvaluationHead's named convs (no ``tem``),
BMNExtractor's ``reduce_dim.0``, ``conv3d.0`` (a Conv2d over the 32 samples) and ``conv2d.0``, TSIHead's
(= PEMHead's) ``head.{i}.0.*`` and ``head.2.*``; the sampling mask and the proposal map are not saved.
"""
import math
import os

import pytest
import torch

from opentad.models.detectors import TSI
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
C = 256


def local_global_shapes(c):
    convs = {"local_conv1d_s": (256, c // 4, 3), "local_conv1d_s_out": (1, 256, 1),
             "local_conv1d_e": (256, c // 4, 3), "local_conv1d_e_out": (1, 256, 1),
             "x1_1": (128, c // 4, 3), "x2_1": (256, 32, 3), "x3_1": (512, 64, 3), "x4_1": (1024, 128, 3),
             "x3_2": (512, 256, 3), "x2_2": (256, 128, 3), "x2_3": (256, 192, 3), "x1_2": (128, 64, 3),
             "x1_3": (128, 96, 3), "x1_4": (128, 128, 3), "global_s_out": (1, 128, 1), "global_e_out": (1, 128, 1)}
    ups = {"up41_to_32": (1024, 128, 2), "up31_to_22": (512, 64, 2), "up32_to_23": (512, 64, 2),
           "up21_to_12": (256, 32, 2), "up22_to_13": (256, 32, 2), "up23_to_14": (256, 32, 2)}
    shapes = {}
    for name, shape in convs.items():
        shapes.update({f"rpn_head.{name}.weight": shape, f"rpn_head.{name}.bias": (shape[0],)})
    for name, shape in ups.items():  # ConvTranspose1d: [in, out / groups, k], bias [out]
        shapes.update({f"rpn_head.{name}.weight": shape, f"rpn_head.{name}.bias": (shape[1] * 4,)})
    return shapes


def upstream_shapes():
    """configs/tsi/thumos_i3d.py: 2048 -> 256 channels (2 convs), map 64 x 128, PEM 2 x (3x3, 128)."""
    shapes = {"projection.convs.0.conv.weight": (C, 2048 // 4, 3), "projection.convs.0.conv.bias": (C,),
              "projection.convs.1.conv.weight": (C, C // 4, 3), "projection.convs.1.conv.bias": (C,)}
    shapes.update(local_global_shapes(C))
    extractor = "roi_head.proposal_roi_extractor"
    for name, shape in (("reduce_dim.0", (128, C, 3)), ("conv3d.0", (512, 128, 32, 1)), ("conv2d.0", (128, 512, 1, 1))):
        shapes.update({f"{extractor}.{name}.weight": shape, f"{extractor}.{name}.bias": (shape[0],)})
    for i in range(2):
        shapes.update({f"roi_head.proposal_head.head.{i}.0.weight": (128, 128, 3, 3),
                       f"roi_head.proposal_head.head.{i}.0.bias": (128,)})
    shapes.update({"roi_head.proposal_head.head.2.weight": (2, 128, 1, 1), "roi_head.proposal_head.head.2.bias": (2,)})
    return shapes


def test_upstream_checkpoint_keys_load_strictly():
    cfg = load_config(os.path.join(ROOT, "configs", "tsi", "thumos_i3d.py")).model.to_dict()
    assert cfg["roi_head"]["proposal_roi_extractor"]["tscale"] == 128
    for part in ("proposal_generator", "proposal_roi_extractor"):  # the map's size shapes no parameter
        cfg["roi_head"][part].update(tscale=16, dscale=8)
    model = build(cfg, DETECTORS)
    assert isinstance(model, TSI)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = upstream_shapes()
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected)), sorted(set(expected) - set(ours)))
    assert ours == expected
    model.load_state_dict({k: torch.zeros(s) for k, s in expected.items()}, strict=True)


def small_model(seed=0):
    cfg = load_config(os.path.join(ROOT, "configs", "_base_", "models", "tsi.py")).model.to_dict()
    cfg["projection"].update(in_channels=8, out_channels=8)
    cfg["rpn_head"].update(in_channels=8)
    roi = cfg["roi_head"]
    roi["proposal_generator"].update(tscale=16, dscale=8)
    roi["proposal_roi_extractor"].update(in_channels=8, roi_channels=16, out_channels=8, tscale=16, dscale=8)
    roi["proposal_head"].update(in_channels=8, feat_channels=8)
    torch.manual_seed(seed)
    return build(cfg, DETECTORS)


def test_xavier_init_reaches_transposed_convs():
    # upstream's TSI.reset_params: Conv1d, ConvTranspose1d, Conv2d, Conv3d -> Xavier-uniform, zero bias
    model = small_model()
    ups = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose1d)]
    assert len(ups) == 6
    for m in ups + [m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]:
        fan_in = m.weight.shape[1] * m.weight[0, 0].numel()
        fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert torch.equal(m.bias, torch.zeros_like(m.bias)) and m.weight.abs().max() <= bound


def test_gradients_reach_every_parameter_and_the_loss_is_seeded():
    model = small_model()
    g = torch.Generator().manual_seed(3)
    x, masks = torch.randn(2, 8, 16, generator=g), torch.ones(2, 16, dtype=torch.bool)
    gts, labels = [torch.tensor([[2.0, 6.0], [9.0, 14.0]]), torch.tensor([[0.0, 11.0]])], [None, None]
    losses = model(x, masks, [{}, {}], gt_segments=gts, gt_labels=labels)
    assert set(losses) == {"loss_tem", "loss_cls", "loss_reg", "cost"}
    losses["cost"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    again = small_model()(x, masks, [{}, {}], gt_segments=gts, gt_labels=labels)
    assert torch.equal(again["cost"], losses["cost"])


def logit(p):
    return math.log(p / (1 - p))


@pytest.mark.parametrize("score_type", ["iou", "iou*s*e"])
def test_candidates_use_the_geometric_mean_of_local_and_global(score_type):
    # sigmoids: local start .8 .2 .2 .2, global start .8 .2 .8 .2 -> p_s = sqrt(product) = .8 .2 .4 .2:
    # candidates (above half the max, or a peak over the neighbours) {0, 2}; the local scores alone would
    # also pick 3. Ends: local .2 .2 .2 .8, global .2 .8 .2 .8 -> p_e = .2 .4 .2 .8: candidates {1, 3}.
    # Map of 2 durations over 4 starts: [t, t + d + 1] kept when t is a start and t + d an end: [0, 2], [2, 4].
    model = small_model()
    seq = lambda *ps: torch.tensor([[logit(p) for p in ps]])  # noqa: E731
    tem = (seq(.8, .2, .2, .2), seq(.2, .2, .2, .8), seq(.8, .2, .8, .2), seq(.2, .8, .2, .8))
    conf = torch.tensor([[[0.9, 0.8, 0.7, 0.6], [0.5, 0.4, 0.3, 0.2]], [[0.6] * 4, [0.5] * 4]])
    iou_map = torch.log(conf / (1 - conf))[None]  # [1, 2, D, T] logits
    (segments, scores), = model.window_candidates((tem, iou_map), dict(score_type=score_type))
    assert segments.tolist() == [[0.0, 2.0], [2.0, 4.0]]
    expected = torch.tensor([0.5 * 0.5, 0.3 * 0.5])
    if score_type == "iou*s*e":
        expected = expected * torch.tensor([0.8 * 0.4, 0.4 * 0.8])
    # float32 sigmoid of rounded logits and a sqrt: a few ulps of each factor (16 ulps allowed)
    assert ((scores[:, 0] - expected).abs() <= 16 * 2.0**-24 * expected).all()
