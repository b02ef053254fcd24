"""ResNet2Plus1d_TSP: upstream's state-dict keys and shapes, hand-worked output shapes, a (2+1)D block against
plain functional ops, frozen stages and norm_eval, TSP checkpoints (round trip, bad files) and one ETAD step.

References are written here from the R(2+1)D rules (stage widths 64/128/256/512, ``mid = (i*o*27) // (i*9 +
3*o)`` per Conv2Plus1D, strided first block and 1x1x1 downsample in stages 2-4, BatchNorm eps 1e-3 and
momentum 0.9), never read from the module under test.
"""
import argparse
import logging
import os
import random

import pytest
import torch
import torch.nn.functional as F

from opentad.cores.optimizer import build_optimizer
from opentad.models.backbones.r2plus1d_tsp import BasicBlock2Plus1D, ResNet2Plus1d_TSP, tsp_backbone_state_dict
from opentad.registry import BACKBONES, DETECTORS, build
from opentad.utils.config import load_config
from opentad.utils.safe_load import UntrustedFileError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
E2E_CONFIG = os.path.join(ROOT, "configs", "etad", "e2e_anet_tsp.py")
TINY = [1, 1, 1, 1]
#: hand-worked (i * o * 27) // (i * 9 + 3 * o): e.g. 64*128*27 = 221184, 64*9 + 3*128 = 960 -> 230
MID = {(64, 64): 144, (64, 128): 230, (128, 128): 288, (128, 256): 460, (256, 256): 576, (256, 512): 921,
       (512, 512): 1152}


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _conv2plus1d(prefix, i, o):
    m = MID[(i, o)]
    return {f"{prefix}.0.weight": (m, i, 1, 3, 3), **_bn(f"{prefix}.1", m), f"{prefix}.3.weight": (o, m, 3, 1, 1)}


def expected_shapes(layers):
    """Upstream's keys and shapes for ``layers``, from the rules in the module docstring."""
    shapes = {"stem.0.weight": (45, 3, 1, 7, 7), **_bn("stem.1", 45), "stem.3.weight": (64, 45, 3, 1, 1),
              **_bn("stem.4", 64)}
    in_planes = 64
    for s, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        for b in range(blocks):
            p = f"layer{s + 1}.{b}"
            i = in_planes if b == 0 else planes
            shapes.update(_conv2plus1d(f"{p}.conv1.0", i, planes), **_bn(f"{p}.conv1.1", planes))
            shapes.update(_conv2plus1d(f"{p}.conv2.0", planes, planes), **_bn(f"{p}.conv2.1", planes))
            if b == 0 and s > 0:
                shapes.update({f"{p}.downsample.0.weight": (planes, i, 1, 1, 1), **_bn(f"{p}.downsample.1", planes)})
        in_planes = planes
    return shapes


@pytest.fixture(scope="module")
def r2plus1d_34():
    torch.manual_seed(0)
    return build(dict(type="ResNet2Plus1d_TSP", layers=[3, 4, 6, 3], frozen_stages=2), BACKBONES)


def test_r2plus1d_34_keys_and_shapes_are_upstreams(r2plus1d_34):
    state = r2plus1d_34.state_dict()
    want = expected_shapes([3, 4, 6, 3])
    assert len(want) == 414  # stem 12; 13 blocks x 24 keys, 3 with a downsample x 30
    assert sorted(state) == sorted(want)
    assert {k: tuple(v.shape) for k, v in state.items()} == want
    bns = [m for m in r2plus1d_34.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == 2 + 16 * 4 + 3 and all(m.eps == 1e-3 and m.momentum == 0.9 for m in bns)


def test_both_registered_names_resolve():
    assert BACKBONES.get("ResNet2Plus1d_TSP") is BACKBONES.get("mmaction.ResNet2Plus1d_TSP") is ResNet2Plus1d_TSP


@pytest.mark.parametrize(
    "shape, out",
    [
        ((2, 3, 8, 32, 32), (2, 512, 1, 2, 2)),
        ((1, 3, 16, 64, 48), (1, 512, 2, 4, 3)),  # 16 -> 16, 8, 4, 2; 64 -> 32, 16, 8, 4; 48 -> 24, 12, 6, 3
        ((1, 3, 5, 33, 17), (1, 512, 1, 3, 2)),  # 5 -> 3, 2, 1; 33 -> 17, 9, 5, 3; 17 -> 9, 5, 3, 2
    ],
)
def test_output_shape_hand_worked(shape, out):
    model = ResNet2Plus1d_TSP(layers=TINY).eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(shape)).shape) == out
    with pytest.raises(ValueError, match=r"\[B, 3, T, H, W\]"):
        model(torch.randn(1, 4, 4, 8, 8))


def _randomise_bn(module, gen):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(generator=gen)
            m.running_mean.normal_(generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)


def _reference_block(x, sd, stride):
    """One basic block from the rules with F.conv3d / F.batch_norm (eval statistics, eps 1e-3)."""

    def bn(y, p):
        return F.batch_norm(y, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"],
                            training=False, eps=1e-3)

    def conv2plus1d(y, p, s):
        y = F.conv3d(y, sd[p + ".0.weight"], stride=(1, s, s), padding=(0, 1, 1))
        y = F.relu(bn(y, p + ".1"))
        return F.conv3d(y, sd[p + ".3.weight"], stride=(s, 1, 1), padding=(1, 0, 0))

    out = F.relu(bn(conv2plus1d(x, "conv1.0", stride), "conv1.1"))
    out = bn(conv2plus1d(out, "conv2.0", 1), "conv2.1")
    short = bn(F.conv3d(x, sd["downsample.0.weight"], stride=stride), "downsample.1") if stride > 1 else x
    return F.relu(out + short)


@pytest.mark.parametrize("in_planes, planes, stride", [(4, 6, 2), (6, 6, 1)])
def test_basic_block_equals_functional_reference(in_planes, planes, stride):
    """Same operations on the same float64 data: equal, bit for bit."""
    gen = torch.Generator().manual_seed(3)
    block = BasicBlock2Plus1D(in_planes, planes, stride).double().eval()
    _randomise_bn(block, gen)
    assert block.conv1[0][0].out_channels == (in_planes * planes * 27) // (in_planes * 9 + 3 * planes)
    assert block.conv2[0][0].out_channels == (planes * planes * 27) // (planes * 9 + 3 * planes)
    x = torch.randn(2, in_planes, 5, 9, 7, dtype=torch.float64, generator=gen)
    with torch.no_grad():
        assert torch.equal(block(x), _reference_block(x, block.state_dict(), stride))


def test_batch_norm_momentum_is_caffe2s():
    """Training-mode statistics: running = 0.1 * old + 0.9 * batch (PyTorch's momentum 0.9).

    In float64 the two means of 2 * 5 * 8 * 8 = 640 values of size < 20 differ by summation order only:
    below 640 * 2**-52 * 20 < 1e-11.
    """
    block = BasicBlock2Plus1D(4, 6, 2).double().train()
    bn = block.conv1[1]
    bn.running_mean.fill_(1.0)
    x = torch.randn(2, 4, 9, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        block(x)
        batch = block.conv1[0](x)
    assert tuple(batch.shape) == (2, 6, 5, 8, 8) and batch.abs().max() < 20
    assert (bn.running_mean - (0.1 + 0.9 * batch.mean(dim=(0, 2, 3, 4)))).abs().max() < 1e-11


STAGES = ["stem", "layer1", "layer2", "layer3", "layer4"]


@pytest.mark.parametrize("frozen_stages", [-1, 0, 2, 4])
@pytest.mark.parametrize("norm_eval", [True, False])
def test_frozen_stages_and_norm_eval(frozen_stages, norm_eval):
    model = ResNet2Plus1d_TSP(layers=TINY, frozen_stages=frozen_stages, norm_eval=norm_eval).train()
    frozen = tuple(STAGES[: frozen_stages + 1])
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith(frozen)), name
    for name, m in model.named_modules():
        if not name:
            continue
        is_bn = isinstance(m, torch.nn.BatchNorm3d)
        assert m.training == (not name.startswith(frozen) and not (norm_eval and is_bn)), name
    model.freeze()  # idempotent: the wrapper calls it again after loading weights
    assert model.training and sum(p.requires_grad for p in model.parameters()) == sum(
        not n.startswith(frozen) for n, _ in model.named_parameters())


def test_gradients_reach_only_the_unfrozen_stages(monkeypatch):
    """with_cp checkpoints the blocks whose input requires grad: only layer4.0 (layer3.0 follows frozen stages)."""
    calls = []
    checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or checkpoint(*a, **k))
    model = ResNet2Plus1d_TSP(layers=TINY, frozen_stages=2, with_cp=True).train()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model(torch.randn(2, 3, 2, 16, 16)).square().mean().backward()
    assert len(calls) == 1
    for name, p in model.named_parameters():
        assert (p.grad is not None) == name.startswith(("layer3", "layer4")), name
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())  # norm_eval: statistics kept
    with pytest.raises(ValueError, match="frozen_stages"):
        ResNet2Plus1d_TSP(layers=TINY, frozen_stages=5)
    with pytest.raises(ValueError, match="layers"):
        ResNet2Plus1d_TSP(layers=[3, 4, 6])


class _NotAllowed:
    pass


def _tsp_file(tmp_path, state, name="tsp.pth"):
    """A checkpoint in TSP's layout: the backbone under ``features.``, classifier heads ``fc1``/``fc2``."""
    model = {"features." + k: v for k, v in state.items()}
    model.update({"fc1.weight": torch.randn(3, 512), "fc1.bias": torch.zeros(3), "fc2.weight": torch.randn(2, 1024)})
    path = tmp_path / name
    torch.save({"model": model, "epoch": 5, "args": argparse.Namespace(backbone="r2plus1d_34")}, path)
    return str(path)


def test_tsp_checkpoint_round_trip_and_bad_files(tmp_path):
    gen = torch.Generator().manual_seed(7)
    hand_made = {k: (torch.randn(s, generator=gen) if s else torch.tensor(9))
                 for k, s in expected_shapes(TINY).items()}
    path = _tsp_file(tmp_path, hand_made)
    assert tsp_backbone_state_dict({"features.stem.0.weight": 1, "fc.weight": 2, "fc1.bias": 3}) == {
        "stem.0.weight": 1}
    loaded = ResNet2Plus1d_TSP(layers=TINY, pretrained=path).state_dict()
    assert sorted(loaded) == sorted(hand_made) and all(torch.equal(loaded[k], hand_made[k]) for k in hand_made)

    missing = str(tmp_path / "absent.pth")
    with pytest.raises(FileNotFoundError, match=r"absent\.pth.*pretrained"):
        ResNet2Plus1d_TSP(layers=TINY, pretrained=missing)
    with pytest.raises(ValueError, match=r"tsp\.pth does not fit layers=\[2, 1, 1, 1\]: 24 missing \['layer1\.1\."):
        ResNet2Plus1d_TSP(layers=[2, 1, 1, 1], pretrained=path)
    bad = {k: v for k, v in hand_made.items() if k != "layer4.0.conv2.1.bias"}
    bad["layer2.0.conv2.0.0.weight"] = torch.zeros(288, 128, 1, 3, 4)
    with pytest.raises(ValueError, match=r"bad\.pth does not fit.*1 missing \['layer4\.0\.conv2\.1\.bias'\], 0 unexpected"
                                         r" \[\], 1 mis-shaped \['layer2\.0\.conv2\.0\.0\.weight: file \(288, 128, 1, 3, 4\)"):
        ResNet2Plus1d_TSP(layers=TINY, pretrained=_tsp_file(tmp_path, bad, "bad.pth"))
    torch.save({"state_dict": {"stem.0.weight": torch.zeros(1)}}, tmp_path / "flat.pth")
    with pytest.raises(ValueError, match=r"flat\.pth: no 'model' state dict.*state_dict"):
        ResNet2Plus1d_TSP(layers=TINY, pretrained=str(tmp_path / "flat.pth"))
    torch.save({"model": {"features.stem.0.weight": torch.zeros(1)}, "extra": _NotAllowed()}, tmp_path / "evil.pth")
    with pytest.raises(UntrustedFileError):  # read weights-only: an arbitrary object is refused, not unpickled
        ResNet2Plus1d_TSP(layers=TINY, pretrained=str(tmp_path / "evil.pth"))


def _wrapper_cfg(**custom):
    cfg = load_config(E2E_CONFIG)["model"]["backbone"].to_dict()
    cfg["backbone"].update(layers=TINY, pretrained=None)
    cfg["custom"].update(custom)
    return cfg


def test_wrapper_accepts_custom_pretrained_as_upstream(tmp_path, caplog):
    """Upstream's wrapper reads only custom.pretrain: custom.pretrained loads nothing and warns if it differs."""
    path = _tsp_file(tmp_path, ResNet2Plus1d_TSP(layers=TINY).state_dict())
    with caplog.at_level(logging.INFO, logger="opentad"):
        cfg = _wrapper_cfg(pretrained=path)
        cfg["backbone"]["pretrained"] = path
        build(cfg, BACKBONES)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("its own pretrained" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="opentad"):
        build(_wrapper_cfg(pretrained="elsewhere.pth"), BACKBONES)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "elsewhere.pth is not read" in messages[0] and "random" in messages[1]


def _tiny_e2e_etad():
    """configs/etad/e2e_anet_tsp.py's model with a one-block-a-stage backbone and a 16-step, 32-channel ETAD."""
    cfg = load_config(E2E_CONFIG)["model"].to_dict()
    cfg["backbone"]["backbone"].update(layers=TINY, pretrained=None)
    cfg["backbone"]["custom"].update(pretrained=None)
    cfg["projection"].update(out_channels=32)
    cfg["neck"].update(in_channels=32, out_channels=32)
    cfg["rpn_head"].update(in_channels=32)
    roi = cfg["roi_head"]
    roi["stages"]["pos_iou_thresh"] = [0.3, 0.4, 0.5]
    roi["proposal_generator"].update(tscale=16, dscale=8, sampling_ratio=0.3)
    roi["proposal_roi_extractor"].update(roi_size=4)
    roi["proposal_head"].update(in_channels=32, roi_size=4, feat_channels=16, fcs_channels=8)
    torch.manual_seed(0)
    return build(cfg, DETECTORS)


def test_tiny_end_to_end_etad_trains_the_unfrozen_stages():
    """Two AdamW steps of the config's optimizer on 16 clips of 4x16x16 frames (temporal checkpointing on)."""
    model = _tiny_e2e_etad().train()
    backbone = model.backbone.model.backbone
    assert model.backbone.memory.temporal_chunks == 16
    optimizer = build_optimizer(load_config(E2E_CONFIG).optimizer.to_dict(), model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    batch = dict(
        inputs=torch.randint(0, 256, (1, 16, 3, 4, 16, 16), dtype=torch.uint8, generator=gen),
        masks=torch.ones(1, 16, dtype=torch.bool),
        metas=[dict(video_name="v", fps=15.0, duration=32.0, snippet_stride=30, offset_frames=0,
                    window_start_frame=0)],
        gt_segments=[torch.tensor([[3.0, 9.0]])],
        gt_labels=[torch.tensor([0])],
    )
    random.seed(0)
    for _ in range(2):
        optimizer.zero_grad()
        losses = model(**batch)
        assert torch.isfinite(losses["cost"])
        losses["cost"].backward()
        optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    prefix = "backbone.model.backbone."
    convs = {prefix + n for n, p in backbone.named_parameters() if p.dim() == 5}
    assert {k for k in convs if k in changed} == {k for k in convs if k.startswith((prefix + "layer3",
                                                                                      prefix + "layer4"))}
    assert not [k for k in changed if k.startswith(prefix) and k not in convs]  # BN frozen, statistics kept
    assert "projection.convs.0.conv.weight" in changed and "roi_head.proposal_heads.2.reg_head.head.weight" in changed
