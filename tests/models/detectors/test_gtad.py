"""GTAD detector: upstream's checkpoint keys, upstream's (default) initialisation, what trains, determinism.

The expected keys are written out from upstream's module structure (opentad/models/{projections/base,
bricks/gcnext,dense_heads/tem_head,roi_heads/roi_extractors/gtad_extractor,roi_heads/proposal_head/pem_head}.py
upstream): ``projection.convs.{i}.conv.*`` (ConvModule, no norm), ``neck.{t,s}convs.{0,2,4}.*`` (GCNeXt),
``rpn_head.tem.{i}.0.*`` (GCNeXt) and ``rpn_head.tem.{i}.1.conv.*``, the extractor's ``gcnext.*`` and
``conv2d.0.*``, the PEM's ``head.{i}.0.*`` and ``head.{num_convs}.*``; the proposal map, the align layers and
the losses hold no state.
"""
import os

import torch

from opentad.models.detectors import GTAD
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")


def gcnext_shapes(prefix, c):
    shapes = {}
    for name, shape in (("tconvs.0", (128, c, 1)), ("tconvs.2", (128, 4, 3)), ("tconvs.4", (c, 128, 1)),
                        ("sconvs.0", (128, 2 * c, 1, 1)), ("sconvs.2", (128, 4, 1, 1)), ("sconvs.4", (c, 128, 1, 1))):
        shapes.update({f"{prefix}.{name}.weight": shape, f"{prefix}.{name}.bias": (shape[0],)})
    return shapes


def upstream_shapes():
    """configs/gtad/thumos_i3d.py: 2048 -> 256 channels, map 64 x 256, roi 16 + context 16, PEM 3 x (3x3, 128)."""
    c = 256
    shapes = {"projection.convs.0.conv.weight": (c, 2048 // 4, 3), "projection.convs.0.conv.bias": (c,)}
    shapes.update(gcnext_shapes("neck", c))
    for i in range(2):
        shapes.update(gcnext_shapes(f"rpn_head.tem.{i}.0", c))
        shapes.update({f"rpn_head.tem.{i}.1.conv.weight": (1, c, 1), f"rpn_head.tem.{i}.1.conv.bias": (1,)})
    extractor = "roi_head.proposal_roi_extractor"
    shapes.update(gcnext_shapes(f"{extractor}.gcnext", c))
    shapes.update({f"{extractor}.conv2d.0.weight": (512, c * 32, 1, 1), f"{extractor}.conv2d.0.bias": (512,)})
    for i, (cin, cout) in enumerate([(512, 128), (128, 128), (128, 128)]):
        shapes.update({f"roi_head.proposal_head.head.{i}.0.weight": (cout, cin, 3, 3),
                       f"roi_head.proposal_head.head.{i}.0.bias": (cout,)})
    shapes.update({"roi_head.proposal_head.head.3.weight": (2, 128, 1, 1), "roi_head.proposal_head.head.3.bias": (2,)})
    return shapes


def test_upstream_checkpoint_keys_load_strictly():
    model = build(load_config(os.path.join(ROOT, "configs", "gtad", "thumos_i3d.py")).model.to_dict(), DETECTORS)
    assert isinstance(model, GTAD)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = upstream_shapes()
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected)), sorted(set(expected) - set(ours)))
    assert ours == expected
    model.load_state_dict({k: torch.zeros(s) for k, s in expected.items()}, strict=True)


def small_model(seed=0):
    cfg = load_config(os.path.join(ROOT, "configs", "_base_", "models", "gtad.py")).model.to_dict()
    cfg["projection"].update(in_channels=6, out_channels=8, conv_cfg=dict(groups=2))
    cfg["neck"].update(in_channels=8, out_channels=8)
    cfg["rpn_head"].update(in_channels=8)
    roi = cfg["roi_head"]
    roi["proposal_generator"].update(tscale=16, dscale=8)
    roi["proposal_roi_extractor"].update(in_channels=8, out_channels=12, tscale=16, dscale=8, roi_size=4,
                                         context_size=4)
    roi["proposal_head"].update(in_channels=12, feat_channels=8)
    torch.manual_seed(seed)
    return build(cfg, DETECTORS)


def batch():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 16, generator=g)
    masks = torch.ones(2, 16, dtype=torch.bool)
    gts = [torch.tensor([[2.0, 6.0], [9.0, 14.0]]), torch.tensor([[0.0, 11.0]])]
    return x, masks, gts, [torch.tensor([0, 0]), torch.tensor([0])]


def test_layers_keep_default_initialisation():
    # upstream's GTAD calls TwoStageDetector.__init__ directly: no Xavier init with zero biases (BMN's), so the
    # plain convs (4 GCNeXt blocks of 6, the extractor's, 4 in the PEM) keep PyTorch's uniform bias draw
    # (ConvModule zeroes its own bias in any detector)
    model = small_model()
    convs = [(n, m) for n, m in model.named_modules()
             if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)) and not n.endswith(".conv")]
    assert len(convs) == 4 * 6 + 1 + 4 and all(m.bias.abs().sum() > 0 for _, m in convs)


def test_gradients_reach_every_parameter_and_the_loss_is_seeded():
    model = small_model()
    x, masks, gts, labels = batch()
    losses = model(x, masks, [{}, {}], gt_segments=gts, gt_labels=labels)
    assert set(losses) == {"loss_tem", "loss_cls", "loss_reg", "cost"}
    losses["cost"].backward()
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {"projection", "neck", "rpn_head", "roi_head"}
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    again = small_model()(x, masks, [{}, {}], gt_segments=gts, gt_labels=labels)
    assert torch.equal(again["cost"], losses["cost"])


def test_inference_returns_the_raw_tem_and_map_logits():
    model = small_model().eval()
    x, masks, _, _ = batch()
    with torch.no_grad():
        tem, iou_map = model.forward_test(x, masks)
    assert tem.shape == (2, 2, 16) and iou_map.shape == (2, 2, 8, 16)
