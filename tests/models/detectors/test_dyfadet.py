"""DyFADet: upstream checkpoint names, what trains, determinism, optimizer groups, inference.

The expected state-dict keys are written out from upstream OpenTAD's module structure
(``projections/dyne_proj.py``: ``DynEProj`` -> ``embed.i`` ConvModule(LN), ``stem.i`` / ``branch.i``
``DynELayer`` -> ``ln``, ``gn``, ``psi``, ``convw``, ``convkw``, ``fc``, ``global_fc``, ``mlp.0``,
``mlp.2``, ``drop_path_{out,mlp}.scale`` (branch only: the stem gets no path_pdrop);
``dense_heads/dyn_head.py``: ``TDynHead`` -> ``{cls,reg}_convs.i`` ``DynamicScale_chk`` ->
``scale_weight``, ``output_weight``, ``depth_module`` (DTFAM, conv_type "others": ``shift_conv``,
``conv``, ``kernel_conv.{conv,norm,gate.gate_conv}``, ``norm``), ``dynamic_convs.s`` (DTFAM, gate
mode, dyn_type "c": ``shift_conv``, ``conv``, ``kernel_conv.gate_conv``, ``norm``); then the
anchor-free head's ``cls_head``, ``reg_head``, ``scale.l.scale``, ``loss_normalizer``).
"""
import os

import torch

from opentad.models.detectors import DyFADet
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
BASE_CONFIG = os.path.join(ROOT, "configs", "_base_", "models", "dyfadet.py")
C_IN, C, HIDDEN, CLASSES, K, WIDE = 6, 16, 8, 3, 3, 11
SMALL = {
    "model.projection.in_channels": C_IN,
    "model.projection.out_channels": C,
    "model.projection.arch": (2, 1, 2),
    "model.projection.mlp_dim": HIDDEN,
    "model.projection.max_seq_len": 32,
    "model.neck.in_channels": C,
    "model.neck.out_channels": C,
    "model.neck.num_levels": 3,
    "model.rpn_head.num_classes": CLASSES,
    "model.rpn_head.in_channels": C,
    "model.rpn_head.feat_channels": C,
    "model.rpn_head.prior_generator.strides": [1, 2, 4],
    "model.rpn_head.prior_generator.regression_range": [(0, 4), (4, 8), (8, 10000)],
}


def _encoder_layer(prefix, drop_path):
    shapes = {f"{prefix}.{n}.{p}": (C,) for n in ("ln", "gn") for p in ("weight", "bias")}
    for name, k in (("psi", 1), ("convw", 1), ("convkw", WIDE), ("fc", 1), ("global_fc", 1)):
        shapes[f"{prefix}.{name}.weight"] = (C, 1, k)
        shapes[f"{prefix}.{name}.bias"] = (C,)
    shapes.update({f"{prefix}.mlp.0.weight": (HIDDEN, C, 1), f"{prefix}.mlp.0.bias": (HIDDEN,),
                   f"{prefix}.mlp.2.weight": (C, HIDDEN, 1), f"{prefix}.mlp.2.bias": (C,)})
    if drop_path:
        shapes[f"{prefix}.drop_path_out.scale"] = (1, C, 1)
        shapes[f"{prefix}.drop_path_mlp.scale"] = (1, C, 1)
    return shapes


def _dtfam(prefix, gate_mode):
    shapes = {f"{prefix}.shift_conv.weight": (C * K, 1, K), f"{prefix}.conv.weight": (C, C * K, 1),
              f"{prefix}.conv.bias": (C,), f"{prefix}.norm.weight": (C,), f"{prefix}.norm.bias": (C,)}
    if gate_mode:
        shapes[f"{prefix}.kernel_conv.gate_conv.weight"] = (C, 1, K)
        shapes[f"{prefix}.kernel_conv.gate_conv.bias"] = (C,)
    else:
        shapes.update({f"{prefix}.kernel_conv.conv.weight": (C, C * K, K), f"{prefix}.kernel_conv.conv.bias": (C,),
                       f"{prefix}.kernel_conv.norm.weight": (C,), f"{prefix}.kernel_conv.norm.bias": (C,),
                       f"{prefix}.kernel_conv.gate.gate_conv.weight": (1, C * K, K),
                       f"{prefix}.kernel_conv.gate.gate_conv.bias": (1,)})
    return shapes


def upstream_small_shapes():
    shapes = {"projection.embed.0.conv.weight": (C, C_IN, 3), "projection.embed.1.conv.weight": (C, C, 3)}
    for i in range(2):
        shapes[f"projection.embed.{i}.norm.weight"] = (C,)
        shapes[f"projection.embed.{i}.norm.bias"] = (C,)
    shapes.update(_encoder_layer("projection.stem.0", drop_path=False))
    for i in range(2):
        shapes.update(_encoder_layer(f"projection.branch.{i}", drop_path=True))
    for level in range(3):
        shapes[f"neck.fpn_norms.{level}.weight"] = (C,)
        shapes[f"neck.fpn_norms.{level}.bias"] = (C,)
        shapes[f"rpn_head.scale.{level}.scale"] = ()
    for tower in ("cls_convs", "reg_convs"):
        for i in range(2):
            prefix = f"rpn_head.{tower}.{i}"
            shapes[f"{prefix}.scale_weight"] = (1,)
            shapes[f"{prefix}.output_weight"] = (1,)
            shapes.update(_dtfam(f"{prefix}.depth_module", gate_mode=False))
            for s in range(2):
                shapes.update(_dtfam(f"{prefix}.dynamic_convs.{s}", gate_mode=True))
    shapes.update({"rpn_head.loss_normalizer": (), "rpn_head.cls_head.weight": (CLASSES, C, 3),
                   "rpn_head.cls_head.bias": (CLASSES,), "rpn_head.reg_head.weight": (2, C, 3),
                   "rpn_head.reg_head.bias": (2,)})
    return shapes


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    return build(load_config(BASE_CONFIG, {**SMALL, **overrides}).model, DETECTORS)


def _batch(lengths=(32, 20), total=32):
    torch.manual_seed(1)
    inputs = torch.randn(len(lengths), C_IN, total)
    masks = torch.zeros(len(lengths), total, dtype=torch.bool)
    for i, n in enumerate(lengths):
        masks[i, :n] = True
        inputs[i, :, n:] = 0
    metas = [dict(video_name=f"video_{i}", fps=10.0, snippet_stride=4, offset_frames=0, duration=n * 0.4)
             for i, n in enumerate(lengths)]
    gt_segments = [torch.tensor([[2.0, 9.0], [12.0, 30.0]]), torch.tensor([[4.0, 6.0]])]
    gt_labels = [torch.tensor([0, 2]), torch.tensor([1])]
    return dict(inputs=inputs, masks=masks, metas=metas, gt_segments=gt_segments, gt_labels=gt_labels)


def test_upstream_names_and_shapes_load_strictly():
    model = _model()
    assert isinstance(model, DyFADet)
    expected = upstream_small_shapes()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected)), sorted(set(expected) - set(ours)))
    assert ours == expected
    torch.manual_seed(0)
    checkpoint = {k: torch.randn(shape) for k, shape in expected.items()}
    result = model.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(torch.equal(v, checkpoint[k]) for k, v in model.state_dict().items())


def test_thumos_config_has_upstream_widths():
    model = build(load_config(os.path.join(ROOT, "configs", "dyfadet", "thumos_videomaev2_g.py")).model, DETECTORS)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["projection.embed.0.conv.weight"] == (512, 1408, 3)
    assert shapes["projection.branch.4.convkw.weight"] == (512, 1, 11)  # k=5: round(2 * 5) + 1
    assert shapes["projection.stem.1.mlp.0.weight"] == (768, 512, 1)
    assert shapes["rpn_head.reg_convs.1.depth_module.kernel_conv.conv.weight"] == (512, 1536, 3)
    assert len(shapes) == 273


def test_gradients_reach_exactly_what_trains():
    """Everything but the frozen unfolding kernels trains; with upstream's init_conv_vars=0 the encoder's
    dynamic convs get exactly zero gradient, and at init (scale_weight = 0) so do the cross-scale convs."""
    # no drop path (it could drop a whole branch); sigmoid gates: GeReTanH gates are 0 wherever their input is
    # negative, which can cut a pyramid level off entirely (see test_closed_gereTanh_gates_cut_the_gradient)
    model = _model(**{"model.projection.path_pdrop": 0.0, "model.rpn_head.dyn_head_cfg.type": "Sigmoid"}).train()
    losses = model(**_batch())
    assert set(losses) == {"cls_loss", "reg_loss", "cost"}
    losses["cost"].backward()
    for name, param in model.named_parameters():
        if "shift_conv" in name:
            assert not param.requires_grad and param.grad is None, name
            continue
        zero = name.split(".")[-2] in ("psi", "fc", "convw", "convkw", "global_fc") or ".dynamic_convs." in name
        assert torch.isfinite(param.grad).all() and (param.grad.abs().sum() == 0) == zero, name
    model = _model(**{"model.projection.init_conv_vars": 0.1, "model.projection.path_pdrop": 0.0,
                      "model.rpn_head.dyn_head_cfg.type": "Sigmoid"}).train()
    with torch.no_grad():
        for module in model.rpn_head.modules():
            if hasattr(module, "scale_weight"):
                module.scale_weight.fill_(0.5)
    model(**_batch())["cost"].backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad.abs().sum() > 0, name


def test_same_seed_same_losses():
    def losses(init_seed, noise_seed):
        model = _model(seed=init_seed).train()
        torch.manual_seed(noise_seed)  # the input noise and drop path draw from the global generator
        return {k: v.item() for k, v in model(**_batch()).items()}

    assert losses(7, 11) == losses(7, 11)
    assert losses(7, 11) != losses(8, 11)


def test_optimizer_groups_keep_fusion_weights_out_of_decay():
    model = _model()
    groups = model.get_optim_groups(dict(lr=1e-4, weight_decay=0.025))
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for p in groups[0]["params"]}
    no_decay = {names[id(p)] for p in groups[1]["params"]}
    assert decay | no_decay == set(names.values()) and not decay & no_decay
    assert {"rpn_head.cls_convs.0.scale_weight", "rpn_head.reg_convs.1.output_weight",
            "projection.branch.0.gn.weight", "projection.branch.0.drop_path_out.scale"} <= no_decay
    assert {"projection.stem.0.psi.weight", "rpn_head.cls_convs.0.depth_module.kernel_conv.conv.weight"} <= decay


def test_inference_keeps_valid_points_of_every_level():
    model = _model().eval()
    batch = _batch()
    with torch.no_grad():
        proposals, scores = model.forward_test(batch["inputs"], batch["masks"])
        results = model(**batch, return_loss=False, post_cfg=dict(sliding_window=True, nms=None))
    # masks are max-pooled: a length-20 video keeps 20, 11 and 6 points (ceil of (n + 1) / 2 per level)
    assert proposals[0].shape == (32 + 16 + 8, 2) and proposals[1].shape == (20 + 11 + 6, 2)
    assert scores[1].shape == (37, CLASSES) and set(results) == {"video_0", "video_1"}


def test_closed_gereTanh_gates_cut_the_gradient():
    """Upstream's GeReTanH is 0 for negative inputs: when a depth module's gate input is negative at every
    step, the module's output is LN(bias), the same for any input, and nothing upstream of it trains."""
    from opentad.models.bricks.dynamic_conv import DTFAM, GateOptions

    module = DTFAM(C, C, kernel_size=K, conv_type="others", gate=GateOptions(type="GeReTanH"))
    with torch.no_grad():
        module.kernel_conv.gate.gate_conv.bias.fill_(-100.0)
    x = torch.randn(2, C, 8, requires_grad=True)
    out = module(x, torch.ones(2, 8, dtype=torch.bool))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.allclose(out[0, :, 0], out[1, :, 5])
