"""mmaction.ResNet3d (I3D ResNet): mmaction2's state-dict names, arithmetic, freezing, weights, AFSD end to end.

The expected names and shapes are written out from mmaction2's naming rules (mmaction/models/backbones/
resnet3d.py with mmcv's ConvModule): every conv-norm pair is a ConvModule whose parts are ``conv`` and
``bn``; a stage ``layer{i}`` is a Sequential of blocks whose convs are ``conv1..conv3`` (``conv1..conv2``
for BasicBlock3d) and whose first block has the 1x1x1 shortcut ``downsample`` when its spatial stride is not
1 or its input width differs from ``planes * expansion``. With inflate style 3x1x1 an inflated bottleneck's
``conv1`` is 3x1x1, else 1x1x1; ``conv2`` is 1x3x3.
"""
import logging
import os

import pytest
import torch
import torch.nn.functional as F

from opentad.models.backbones.resnet3d import Bottleneck3d, ResNet3d
from opentad.models.bricks.conv_module import ConvModule3d
from opentad.registry import BACKBONES, DETECTORS, ConfigError, build
from opentad.utils.config import load_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
CONFIGS = {
    "thumos": ("configs/afsd/thumos_i3d_r50_256x96x96_lr1e-5.py", 256, 64),
    "anet": ("configs/afsd/anet_i3d_r50_768x96x96_lr1e-5_bs16.py", 768, 96),
}
I3D_INFLATE = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def mmaction_keys(base=64, blocks=(3, 4, 6, 3), inflate=I3D_INFLATE, stem=(5, 7, 7), bottleneck=True):
    """``{name: shape}`` of mmaction2's ResNet3d (inflate style 3x1x1), from its naming rules."""
    keys = {}

    def conv_module(name, out, inp, kernel):
        keys[f"{name}.conv.weight"] = (out, inp, *kernel)
        for k in BN_KEYS:
            keys[f"{name}.bn.{k}"] = () if k == "num_batches_tracked" else (out,)

    conv_module("conv1", base, 3, stem)
    expansion = 4 if bottleneck else 1
    inplanes = base
    for i, (n, flags) in enumerate(zip(blocks, inflate)):
        planes = base * 2**i
        for j, flag in enumerate(flags):
            prefix, width_in = f"layer{i + 1}.{j}", inplanes if j == 0 else planes * expansion
            if bottleneck:
                conv_module(f"{prefix}.conv1", planes, width_in, (3 if flag else 1, 1, 1))
                conv_module(f"{prefix}.conv2", planes, planes, (1, 3, 3))
                conv_module(f"{prefix}.conv3", planes * 4, planes, (1, 1, 1))
            else:
                conv_module(f"{prefix}.conv1", planes, width_in, (3 if flag else 1, 3, 3))
                conv_module(f"{prefix}.conv2", planes, planes, (3 if flag else 1, 3, 3))
            if j == 0 and (i > 0 or inplanes != planes * expansion):
                conv_module(f"{prefix}.downsample", planes * expansion, inplanes, (1, 1, 1))
        inplanes = planes * expansion
    return keys


def _upstream_backbone(name="thumos", **override):
    cfg = load_config(os.path.join(ROOT, CONFIGS[name][0])).model.backbone.to_dict()
    cfg["custom"]["pretrain"] = None
    cfg["backbone"].update(override)
    return cfg


@pytest.fixture(scope="module")
def r50():
    torch.manual_seed(0)
    return build(_upstream_backbone()["backbone"], BACKBONES)


def test_depth50_keys_and_shapes_are_mmaction2s(r50):
    shapes = {k: tuple(v.shape) for k, v in r50.state_dict().items()}
    assert shapes == mmaction_keys()
    assert len(shapes) == 318  # 53 ConvModules (stem, 16 x 3 bottleneck convs, 4 shortcuts) x 6 tensors
    assert shapes["conv1.conv.weight"] == (64, 3, 5, 7, 7)
    assert shapes["layer2.0.conv1.conv.weight"] == (128, 256, 3, 1, 1)  # inflate 1: 3x1x1
    assert shapes["layer2.1.conv1.conv.weight"] == (128, 512, 1, 1, 1)  # inflate 0: 1x1x1
    assert shapes["layer4.1.conv1.conv.weight"] == (512, 2048, 3, 1, 1)
    assert shapes["layer1.0.downsample.conv.weight"] == (256, 64, 1, 1, 1)
    assert shapes["layer4.0.downsample.bn.running_var"] == (2048,)
    assert "layer1.1.downsample.conv.weight" not in shapes
    assert r50.feat_dim == 2048


def test_depth50_output_shape_hand_worked(r50):
    """T=20, H=W=40. Time: stem conv k5 p2 s2 -> 10, pool1 s2 -> 5, pool2 k2 s2 -> 2. Space: stem k7 p3 s2
    -> 20, pool1 k3 p1 s2 -> 10, layer2..4 (k3 p1 s2) -> 5, 3, 2."""
    r50.eval()
    with torch.no_grad():
        out = r50(torch.randn(1, 3, 20, 40, 40))
    assert out.shape == (1, 2048, 2, 2, 2) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_upstream_configs_give_upstreams_feature_shapes(name):
    """upstream's comments: [B, 1, 3, 768, 96, 96] -> [B, 1, 2048, 96, 3, 3]; THUMOS' 256 frames -> 32 steps,
    interpolated to the 64-snippet window. The upstream backbone with base_channels 2 instead of 64 (shapes
    in time and space depend on kernels and strides only; 2 * 32 = 64 channels instead of 2048)."""
    _, frames, window = CONFIGS[name]
    wrapper = build(_upstream_backbone(name, base_channels=2), BACKBONES)
    with torch.no_grad():
        out = wrapper(torch.zeros(1, 1, 3, frames, 96, 96, dtype=torch.uint8))
    assert out.shape == (1, 64, window, 3, 3)
    assert wrapper.model.backbone.res_layers == ["layer1", "layer2", "layer3", "layer4"]


def test_spatial_stride_alone_adds_a_shortcut_conv():
    """mmaction2's rule: a first block gets ``downsample`` when its spatial stride is not 1 or its width
    changes. Depth 18, base 4, spatial strides (2, 1, 1, 1): layer1 (4 -> 4 channels) needs it for the stride,
    layers 2-4 for the width. Time 8 -> 8 (stem and pool1, temporal stride 1) -> 4 (pool2); space 32 -> 16 (stem)
    -> 8 (pool1) -> 4 (layer1), then stride 1."""
    net = _small(spatial_strides=(2, 1, 1, 1)).eval()
    shortcuts = {n.split(".")[0]: tuple(m.conv.stride) for n, m in net.named_modules() if n.endswith("downsample")}
    assert shortcuts == {"layer1": (1, 2, 2), "layer2": (1, 1, 1), "layer3": (1, 1, 1), "layer4": (1, 1, 1)}
    with torch.no_grad():
        assert net(torch.randn(1, 3, 8, 32, 32)).shape == (1, 32, 4, 4, 4)


def _bn(gen, width):
    return [torch.randn(width, generator=gen, dtype=torch.float64) * 0.1 + off for off in (1.0, 0.0, 0.0)] + [
        torch.rand(width, generator=gen, dtype=torch.float64) + 0.5
    ]


@pytest.mark.parametrize(
    "style,inflate_style,inflate,dilation",
    [("pytorch", "3x1x1", True, 1), ("caffe", "3x1x1", True, 1), ("pytorch", "3x3x3", True, 2),
     ("pytorch", "3x1x1", False, 1)],
)
def test_bottleneck_equals_functional_reference(style, inflate_style, inflate, dilation):
    """One Bottleneck3d (8 -> 4 -> 16 channels, strides t2 s2) in eval mode against F.conv3d / F.batch_norm
    with kernels, paddings and strides written from mmaction2's rules. The same operations on the same float64
    data in the same order: equal to the bit."""
    gen = torch.Generator().manual_seed(1)
    kt1, kt2 = {("3x1x1", True): (3, 1), ("3x3x3", True): (1, 3)}.get((inflate_style, inflate), (1, 1))
    strides = (2, 2, 2)
    s1, s2 = (strides, 1) if style == "caffe" else (1, strides)
    down = ConvModule3d(8, 16, 1, stride=strides, act=None)
    block = Bottleneck3d(inplanes=8, planes=4, spatial_stride=2, temporal_stride=2, dilation=dilation,
                         downsample=down, style=style, inflate=inflate, inflate_style=inflate_style).double()
    params = {}
    for name, module in block.named_modules():
        if hasattr(module, "conv") and hasattr(module, "bn"):
            module.conv.weight.data = torch.randn(module.conv.weight.shape, generator=gen, dtype=torch.float64) * 0.3
            w, b, mean, var = _bn(gen, module.bn.num_features)
            module.bn.weight.data, module.bn.bias.data, module.bn.running_mean, module.bn.running_var = w, b, mean, var
            params[name] = (module.conv.weight, w, b, mean, var)
    block.eval()
    x = torch.randn(2, 8, 6, 9, 9, generator=gen, dtype=torch.float64)

    def cbn(name, y, stride, padding, dil=1):
        weight, w, b, mean, var = params[name]
        y = F.conv3d(y, weight, stride=stride, padding=padding, dilation=dil)
        return F.batch_norm(y, mean, var, w, b, training=False, eps=1e-5)

    y = F.relu(cbn("conv1", x, s1, (kt1 // 2, 0, 0)))
    y = F.relu(cbn("conv2", y, s2, (kt2 // 2, dilation, dilation), (1, dilation, dilation)))
    y = cbn("conv3", y, 1, 0)
    expected = F.relu(y + cbn("downsample", x, strides, 0))
    with torch.no_grad():
        out = block(x)
    assert out.shape == expected.shape == (2, 16, 3, 5, 5)
    assert torch.equal(out, expected)


def _small(**kw):
    base = dict(type="ResNet3d", depth=18, base_channels=4, conv1_kernel=(3, 7, 7))
    return build({**base, **kw}, BACKBONES)


def test_frozen_stages_and_norm_eval():
    net = _small(frozen_stages=1, norm_eval=True)
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in net.named_parameters() if n.startswith(("conv1.", "layer1."))}
    net.train()
    assert not net.conv1.training and not net.layer1.training and not net.layer1[0].conv1.conv.training
    assert net.layer2[0].conv1.conv.training  # not frozen: only its batch norms stay in eval (norm_eval)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert bns and not any(m.training for m in bns)
    before = net.layer3[0].conv1.bn.running_mean.clone()
    net(torch.randn(1, 3, 8, 32, 32))
    assert torch.equal(net.layer3[0].conv1.bn.running_mean, before)  # eval-mode norms keep their statistics

    net = _small(norm_eval=False).train()
    assert all(m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    assert all(p.requires_grad for p in net.parameters())
    net = _small(norm_cfg=dict(type="BN3d", requires_grad=False))
    assert {n for n, p in net.named_parameters() if not p.requires_grad} == {
        n for n, _ in net.named_parameters() if ".bn." in n}


def test_zero_init_residual_and_mmcv_init():
    net = _small(zero_init_residual=True)
    assert all(not b.conv2.bn.weight.any() for layer in (net.layer1, net.layer4) for b in layer)
    assert net.layer1[0].conv1.bn.weight.eq(1).all()
    net = _small(depth=50, zero_init_residual=True)  # bottlenecks: the third conv's norm
    assert all(not b.conv3.bn.weight.any() and b.conv2.bn.weight.eq(1).all() for b in net.layer3)
    net = _small(zero_init_residual=False)
    assert net.layer1[0].conv2.bn.weight.eq(1).all() and not net.layer1[0].conv1.bn.bias.any()


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("conv_cfg", dict(type="Conv2d"), "conv_cfg type 'Conv2d' is not supported; valid: [{'type': 'Conv3d'}]"),
        ("norm_cfg", dict(type="SyncBN"), "norm_cfg type 'SyncBN' is not supported; valid: [{'type': 'BN3d'}]"),
        ("act_cfg", dict(type="GELU"), "act_cfg type 'GELU' is not supported; valid: [{'type': 'ReLU'}]"),
        ("norm_cfg", None, "ResNet3d.norm_cfg = None (NoneType): expected a dict"),  # the registry's type check
        ("norm_cfg", dict(type="BN3d", requires_grd=False), "requires_grd"),
        ("depth", 42, "depth 42 is not one of [18, 34, 50, 101, 152]"),
        ("inflate", (1, 1, 1), "inflate has 3 stages, num_stages is 4"),
        ("inflate", ((1, 0, 1), 1, 1, 1), "inflate of stage 0 has 3 entries for 2 blocks"),
        ("inflate_style", "3x3x1", "valid: 3x1x1, 3x3x3"),
        ("out_indices", (4,), "out_indices (4,) must index the 4 stages"),
        ("temporal_strides", (2, 1, 1, 1), "stage 0 has temporal stride 2 but no downsample shortcut"),
    ],
)
def test_bad_values_name_the_key_and_what_is_valid(key, value, message):
    with pytest.raises((ConfigError, ValueError)) as info:
        _small(**{key: value})
    assert message in str(info.value)


def _resnet18_2d(gen, base=4):
    """A torchvision-style 2D ResNet-18 state dict (``conv1``, ``bn1``, ``layerX.Y.convN``/``bnN``,
    ``downsample.0/1``, ``fc``), widths of base ``base``."""
    sd = {"conv1.weight": torch.randn(base, 3, 7, 7, generator=gen)}
    bn = lambda name, c: sd.update({f"{name}.{k}": torch.randn(c, generator=gen) for k in BN_KEYS[:4]})  # noqa
    bn("bn1", base)
    inplanes = base
    for i in range(4):
        planes = base * 2**i
        for j in range(2):
            width_in = inplanes if j == 0 else planes
            sd[f"layer{i + 1}.{j}.conv1.weight"] = torch.randn(planes, width_in, 3, 3, generator=gen)
            sd[f"layer{i + 1}.{j}.conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=gen)
            bn(f"layer{i + 1}.{j}.bn1", planes)
            bn(f"layer{i + 1}.{j}.bn2", planes)
        if i > 0:
            sd[f"layer{i + 1}.0.downsample.0.weight"] = torch.randn(planes, inplanes, 1, 1, generator=gen)
            bn(f"layer{i + 1}.0.downsample.1", planes)
        inplanes = planes
    sd.update({"fc.weight": torch.randn(10, inplanes, generator=gen), "fc.bias": torch.randn(10, generator=gen)})
    return sd


def test_pretrained_url_is_skipped_and_a_local_2d_file_is_inflated(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="opentad.models.backbones.resnet3d")
    _small(pretrained="torchvision://resnet18")
    notes = [r.getMessage() for r in caplog.records if r.name == "opentad.models.backbones.resnet3d"]
    assert len(notes) == 1 and "custom.pretrain" in notes[0] and "torchvision://resnet18" in notes[0]
    caplog.clear()
    with pytest.raises(FileNotFoundError, match="no_such.pth"):
        _small(pretrained=str(tmp_path / "no_such.pth"))

    sd2d = _resnet18_2d(torch.Generator().manual_seed(2))
    torch.save(sd2d, tmp_path / "r18.pth")
    net = _small(pretrained=str(tmp_path / "r18.pth"), inflate=(1, 1, (1, 0), 0))
    inflated = net.state_dict()
    # conv1 kernel (3, 7, 7): each of the 3 temporal slices is the 2D kernel / 3
    for t in range(3):
        assert torch.equal(inflated["conv1.conv.weight"][:, :, t], sd2d["conv1.weight"] / 3)
    assert torch.equal(inflated["layer3.1.conv1.conv.weight"][:, :, 0], sd2d["layer3.1.conv1.weight"])  # t = 1
    assert torch.equal(inflated["layer3.0.conv2.conv.weight"][:, :, 1], sd2d["layer3.0.conv2.weight"] / 3)
    assert torch.equal(inflated["layer2.0.downsample.conv.weight"][:, :, 0], sd2d["layer2.0.downsample.0.weight"])
    for k in BN_KEYS[:4]:
        assert torch.equal(inflated[f"layer4.1.conv2.bn.{k}"], sd2d[f"layer4.1.bn2.{k}"])
        assert torch.equal(inflated[f"layer2.0.downsample.bn.{k}"], sd2d[f"layer2.0.downsample.1.{k}"])
        assert torch.equal(inflated[f"conv1.bn.{k}"], sd2d[f"bn1.{k}"])
    assert "not used: ['fc.bias', 'fc.weight']" in caplog.text

    torch.save({"state_dict": net.state_dict()}, tmp_path / "r18_3d.pth")
    again = _small(pretrained=str(tmp_path / "r18_3d.pth"), pretrained2d=False, inflate=(1, 1, (1, 0), 0))
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in inflated.items())


def test_mmaction_i3d_checkpoint_loads_through_custom_pretrain(tmp_path, caplog):
    """A hand-made checkpoint in mmaction2's Recognizer3D layout (``state_dict`` of ``backbone.*`` and
    ``cls_head.fc_cls.*``; depth-50 names, widths of base 8) loads completely into the wrapper."""
    gen = torch.Generator().manual_seed(3)
    expected = mmaction_keys(base=8)
    sd = {f"backbone.{k}": (torch.randint(0, 9, s, generator=gen) if k.endswith("tracked") else
                             torch.rand(s, generator=gen) + 0.5) for k, s in expected.items()}
    sd["cls_head.fc_cls.weight"], sd["cls_head.fc_cls.bias"] = torch.randn(400, 256, generator=gen), torch.zeros(400)
    path = tmp_path / "i3d_r50_kinetics400.pth"
    torch.save({"meta": {"epoch": 100}, "state_dict": sd}, path)
    cfg = _upstream_backbone(base_channels=8)
    cfg["custom"]["pretrain"] = str(path)
    with caplog.at_level(logging.INFO, logger="opentad"):
        wrapper = build(cfg, BACKBONES)
    loaded = wrapper.model.state_dict()
    assert {k for k in loaded if k.startswith("backbone.")} == {k for k in sd if k.startswith("backbone.")}
    assert all(torch.equal(loaded[k], sd[k]) for k in loaded if k.startswith("backbone."))
    assert "0 missing" in caplog.text and "2 unexpected (2 classifier)" in caplog.text


def test_afsd_end_to_end_trains():
    """AFSD with a small ResNet3d (depth 18, base 8, upstream's stem) end to end: frames [1, 1, 3, 32, 32, 32]
    -> backbone [1, 64, 4, 1, 1] -> [1, 64, 16, 3, 3] -> AFSDNeck(e2e) -> both heads. Every backbone weight but
    the frozen norms (custom.norm_eval) gets a gradient, and three small SGD steps (lr 1e-5, about 0.007 of
    predicted first-order decrease each) lower the loss on the same batch each time (norms in eval mode: the
    loss is a deterministic function of the weights)."""
    torch.manual_seed(0)
    cfg = _upstream_backbone(depth=18, base_channels=8, inflate=1)
    cfg["custom"]["post_processing_pipeline"][1]["size"] = (16, 3, 3)
    model = build(dict(
        type="AFSD", backbone=cfg,
        neck=dict(type="AFSDNeck", in_channels=64, out_channels=32, frame_num=32, layer_num=3, e2e=True),
        rpn_head=dict(type="AFSDCoarseHead", in_channels=32, out_channels=32, frame_num=32, num_classes=3,
                      layer_num=3, feat_t=16, fpn_strides=[2, 4, 8]),
        roi_head=dict(type="AFSDRefineHead", in_channels=32, num_classes=3, overlap_thresh=0.5, loc_bounded=False,
                      use_smooth_l1=False),
    ), DETECTORS).train()
    frames = torch.randint(0, 256, (1, 1, 3, 32, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    batch = dict(inputs=frames, masks=torch.ones(1, 16, dtype=torch.bool), metas=[{}],
                 gt_segments=[torch.tensor([[2.0, 9.5]])], gt_labels=[torch.tensor([1])])
    costs = []
    for step in range(4):
        model.zero_grad()
        cost = model(**batch)["cost"]
        costs.append(cost.item())
        if step == 3:
            break
        cost.backward()
        if step == 0:
            backbone = model.backbone.model.backbone
            idle = [n for n, p in backbone.named_parameters() if p.requires_grad and not p.grad.any()]
            assert not idle and all(not p.requires_grad for n, p in backbone.named_parameters() if ".bn." in n)
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p -= 1e-5 * p.grad
    assert all(a > b for a, b in zip(costs, costs[1:])), costs
