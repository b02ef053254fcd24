"""VideoMambaSuite / CausalTAD detectors: pyramid and masks as upstream, gradients, determinism, optimizer groups."""
import os

import pytest
import torch

from opentad.models.bricks.mamba_blocks import masked_max_pool
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
FAMILIES = {
    "causaltad": dict(channel_expand=2, num_head=2),
    "videomambasuite": dict(mamba_cfg=dict(kernel_size=4, drop_path_rate=0.3, use_mamba_type="dbm")),
    "videomambasuite-vim": dict(mamba_cfg=dict(kernel_size=3, drop_path_rate=0.3, use_mamba_type="vim")),
}


def small_model(family, seed=0):
    cfg = load_config(os.path.join(ROOT, "configs", "_base_", "models", family.split("-")[0] + ".py"))["model"]
    cfg["projection"].update(in_channels=12, out_channels=16, arch=(1, 1, 2), **FAMILIES[family])
    cfg["neck"].update(in_channels=16, out_channels=16, num_levels=3)
    cfg["rpn_head"].update(num_classes=3, in_channels=16, feat_channels=16)
    cfg["rpn_head"]["prior_generator"].update(strides=[1, 2, 4], regression_range=[(0, 4), (4, 8), (8, 10000)])
    torch.manual_seed(seed)
    return build(cfg, DETECTORS)


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 12, 13, generator=g)
    masks = torch.ones(2, 13, dtype=torch.bool)
    masks[1, 9:] = False
    gt = dict(gt_segments=[torch.tensor([[0.5, 12.5]]), torch.tensor([[0.0, 3.0], [4.0, 8.0]])],
              gt_labels=[torch.tensor([2]), torch.tensor([0, 1])])
    return x, masks, gt


def test_masked_max_pool_hand_worked():
    """Kernel 3, stride 2, padding 1: output i pools inputs 2i-1..2i+1; a step is valid if any pooled one is."""
    pool = torch.nn.MaxPool1d(3, stride=2, padding=1)
    x = torch.tensor([[[1.0, 5.0, 2.0, 7.0, 9.0, 3.0]]])
    mask = torch.tensor([[True, True, True, True, False, False]])
    out, out_mask = masked_max_pool(x, mask, pool)
    assert out_mask.tolist() == [[True, True, True]]  # nearest resizing would drop the last (input 4 is padding)
    assert out.tolist() == [[[5.0, 7.0, 9.0]]]  # max over (pad, 1, 5), (5, 2, 7), (7, 9, 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_pyramid_lengths_and_masks_follow_upstream(family):
    """No padding of the input (upstream's SingleStageDetector): levels of ceil(T / 2^l) steps, max-pooled masks."""
    model = small_model(family).eval()
    x, masks, _ = batch()
    feats, feat_masks = model.extract_feat(x, masks)
    assert [f.shape[-1] for f in feats] == [13, 7, 4]
    assert feat_masks[1][1].tolist() == [True] * 5 + [False] * 2  # inputs 0..8 valid: windows up to 2i-1 <= 8
    assert feat_masks[2][1].tolist() == [True] * 3 + [False]
    for f, m in zip(feats, feat_masks):
        assert torch.equal(f[1][:, ~m[1]], torch.zeros_like(f[1][:, ~m[1]]))


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_every_parameter(family):
    model = small_model(family).train()
    x, masks, gt = batch()
    model(x, masks, [{}, {}], **gt)["cost"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("family", FAMILIES)
def test_seeded_determinism(family):
    """Same seed: the same weights, the same drop-path draws, the same loss, bit for bit."""
    losses = []
    for _ in range(2):
        model = small_model(family, seed=5).train()
        x, masks, gt = batch()
        torch.manual_seed(7)
        losses.append(model(x, masks, [{}, {}], **gt)["cost"].detach())
    assert torch.equal(losses[0], losses[1])


def test_optimizer_groups_decay_mamba_parameters_as_upstream():
    """Upstream's VideoMambaSuite.get_optim_groups puts A_log, D, A_b_log and D_b in the decayed group."""
    model = small_model("videomambasuite-vim")
    groups = model.get_optim_groups(dict(lr=1e-3, weight_decay=0.05))
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for p in groups[0]["params"]}
    no_decay = {names[id(p)] for p in groups[1]["params"]}
    assert decay | no_decay == set(names.values()) and not decay & no_decay
    for suffix in ("A_log", "D", "A_b_log", "D_b", "in_proj.weight", "conv1d_b.weight", "x_proj.weight"):
        assert f"projection.stem.0.mamba.{suffix}" in decay, suffix
    for suffix in ("dt_proj.bias", "conv1d.bias"):
        assert f"projection.stem.0.mamba.{suffix}" in no_decay, suffix
    assert "projection.stem.0.norm.weight" in no_decay and "projection.stem.0.drop_path.scale" in no_decay
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0


def test_projection_zeroes_biases_but_dt_bias():
    model = small_model("causaltad")
    block = model.projection.stem[0].block
    assert torch.equal(block.conv1d.bias, torch.zeros_like(block.conv1d.bias))
    assert torch.equal(block.qkv.bias, torch.zeros_like(block.qkv.bias))
    assert (block.dt_proj.bias < 0).all()  # inverse softplus of dt in [0.001, 0.1]
