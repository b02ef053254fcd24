"""The backbone wrapper (mmaction.Recognizer3D), its preprocessor, and the side-tuning ladder."""
import logging

import pytest
import torch
import torch.nn.functional as F

from opentad.models.backbones.vit_ladder import VisionTransformerLadder
from opentad.registry import BACKBONES, ConfigError, build

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
WINDOW, CLIP = 16, 4  # frames per video window, frames per clip -> 4 clips


def _cfg(backbone_type="VisionTransformerAdapter", **custom):
    vit = dict(
        type=backbone_type,
        img_size=32,
        patch_size=16,
        embed_dims=16,
        depth=2,
        num_heads=2,
        num_frames=CLIP,
        return_feat_map=True,
    )
    if backbone_type != "VisionTransformerCP":
        vit.update(total_frames=WINDOW, adapter_index=[0, 1])
    chunks = WINDOW // CLIP
    options = dict(
        pretrain=None,
        pre_processing_pipeline=[
            dict(type="Rearrange", keys=["frames"], ops="b n c (t1 t) h w -> (b t1) n c t h w", t1=chunks)
        ],
        post_processing_pipeline=[
            dict(type="Reduce", keys=["feats"], ops="b n c t h w -> b c t", reduction="mean"),
            dict(type="Rearrange", keys=["feats"], ops="(b t1) c t -> b c (t1 t)", t1=chunks),
            dict(type="Interpolate", keys=["feats"], size=WINDOW),
        ],
        norm_eval=False,
    )
    options.update(custom)
    return dict(
        type="mmaction.Recognizer3D",
        backbone=vit,
        data_preprocessor=dict(type="mmaction.ActionDataPreprocessor", mean=MEAN, std=STD, format_shape="NCTHW"),
        custom=options,
    )


def _frames(batch=2):
    torch.manual_seed(0)
    return torch.randint(0, 256, (batch, 1, 3, WINDOW, 32, 32), dtype=torch.uint8)


def test_preprocessor_normalises_channels_and_flips_to_rgb():
    pre = build(dict(type="mmaction.ActionDataPreprocessor", mean=MEAN, std=STD, format_shape="NCTHW"), BACKBONES)
    x = _frames(1)
    out = pre(x)
    for c in range(3):
        torch.testing.assert_close(out[:, :, c], (x[:, :, c].float() - MEAN[c]) / STD[c])
    assert not pre.state_dict()  # mean/std are not checkpoint keys (as mmaction2)
    flip = build(dict(type="ActionDataPreprocessor", mean=MEAN, std=STD, to_rgb=True, format_shape="NCTHW"), BACKBONES)
    torch.testing.assert_close(flip(x)[:, :, 0], (x[:, :, 2].float() - MEAN[0]) / STD[0])


def test_forward_equals_manual_clip_split_pool_and_resize():
    wrapper = build(_cfg(), BACKBONES).eval()
    x = _frames()
    masks = torch.ones(2, WINDOW, dtype=torch.bool)
    masks[1, 10:] = False
    out = wrapper(x, masks)
    assert out.shape == (2, 16, WINDOW) and out.dtype == torch.float32
    # independent reference: normalise, cut into clips, run, average space, join clips, resize in time
    norm = (x[:, 0].float() - torch.tensor(MEAN).view(3, 1, 1, 1)) / torch.tensor(STD).view(3, 1, 1, 1)
    clips = torch.stack([norm[b, :, k * CLIP : (k + 1) * CLIP] for b in range(2) for k in range(WINDOW // CLIP)])
    feats = wrapper.model.backbone(clips).mean(dim=(3, 4))  # [B*4, C, 2]
    joined = torch.stack([torch.cat(list(feats[b * 4 : (b + 1) * 4]), dim=1) for b in range(2)])  # [B, C, 8]
    want = F.interpolate(joined, size=WINDOW, mode="linear", align_corners=False) * masks[:, None]
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    assert (out[1, :, 10:] == 0).all()
    with pytest.raises(ValueError, match="masks"):
        wrapper(x, masks[:, :8])


def test_adapter_mode_trains_only_adapters_through_the_wrapper():
    wrapper = build(_cfg(), BACKBONES)
    trainable = [n for n, p in wrapper.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("model.backbone.blocks.") and ".adapter." in n for n in trainable)
    assert wrapper.freeze_backbone is False and wrapper.norm_eval is False


def test_freeze_backbone_runs_without_autograd_and_norm_eval_freezes_norms():
    frozen = build(_cfg("VisionTransformerCP", freeze_backbone=True, norm_eval=True), BACKBONES).train()
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not frozen(_frames()).requires_grad
    fullft = build(_cfg("VisionTransformerCP", norm_eval=True), BACKBONES)
    frozen_names = {n for n, p in fullft.named_parameters() if not p.requires_grad}
    assert frozen_names == {n for n, _ in fullft.named_parameters() if ".norm" in n or "fc_norm" in n}
    assert fullft(_frames()).requires_grad


def test_temporal_checkpointing_matches_plain_forward_and_grads():
    plain = build(_cfg("VisionTransformerCP"), BACKBONES)
    chunked = build(
        _cfg("VisionTransformerCP", temporal_checkpointing=True, temporal_checkpointing_chunk_num=2,
             temporal_checkpointing_chunk_dim=0),
        BACKBONES,
    )
    chunked.load_state_dict(plain.state_dict())
    outs = []
    for w in (plain, chunked):
        y = w.eval()(_frames())
        y.square().sum().backward()
        outs.append((y.detach(), w.model.backbone.blocks[0].attn.qkv.weight.grad.clone()))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[0][1], outs[1][1], atol=1e-4, rtol=1e-4)


def test_custom_keys_are_checked_and_random_start_warns_once(caplog):
    with pytest.raises(ConfigError, match="pretrian"):
        build(_cfg(pretrian="x.pth"), BACKBONES)
    with pytest.raises(ConfigError, match="chunk"):
        build(_cfg(temporal_checkpointing=True), BACKBONES)
    with caplog.at_level(logging.WARNING, logger="opentad"):
        build(_cfg(), BACKBONES)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "random" in warnings[0].getMessage()


def test_ladder_is_identity_at_init_and_only_the_ladder_trains():
    wrapper = build(_cfg("VisionTransformerLadder"), BACKBONES)
    ladder = wrapper.model.backbone
    assert isinstance(ladder, VisionTransformerLadder)
    trainable = {n for n, p in wrapper.named_parameters() if p.requires_grad}
    ladder_names = {"model.backbone." + n for n, _ in ladder.named_parameters() if n.startswith("ladders.adapters.")}
    assert trainable == ladder_names
    assert "ladders.adapters.1.dwconv.weight" in ladder.state_dict()
    clips = torch.randn(4, 3, CLIP, 32, 32)  # one video of 4 clips
    wrapper.train()
    assert not ladder.blocks.training  # the frozen ViT stays in eval mode
    x, grid = ladder.embed(clips)
    for block in ladder.blocks:
        x = block(x, grid[1:])
    torch.testing.assert_close(ladder(clips), ladder.output(x, grid))
    with torch.no_grad():
        ladder.ladders.adapters[0].up_proj.weight.normal_()
    ladder(clips).sum().backward()
    assert ladder.ladders.adapters[0].down_proj.weight.grad is not None
    assert ladder.blocks[0].attn.qkv.weight.grad is None
