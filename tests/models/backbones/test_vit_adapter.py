"""Temporal-informative adapters and the adapter ViT: identity at init, temporal mixing, freezing, sizes."""
import logging

import pytest
import torch
from torch import nn

from opentad.models.backbones.vit import VisionTransformerCP
from opentad.models.backbones.vit_adapter import VisionTransformerAdapter
from opentad.models.bricks.vit import Block
from opentad.models.bricks.vit_adapter import AdapterSpec, PlainAdapter, TemporalAdapter, temporal_mix


def _tiny(cls=VisionTransformerAdapter, **kwargs):
    args = dict(img_size=32, patch_size=16, embed_dims=32, depth=3, num_heads=2, num_frames=4, return_feat_map=True)
    if cls is VisionTransformerAdapter:
        args.update(total_frames=8, adapter_index=[0, 2])
    args.update(kwargs)
    return cls(**args)


def test_adapter_block_equals_plain_block_at_initialisation():
    torch.manual_seed(0)
    adapter = TemporalAdapter(embed_dims=16, temporal_size=4)
    with_adapter = Block(embed_dims=16, num_heads=2, adapter=adapter)
    plain = Block(embed_dims=16, num_heads=2)
    plain.load_state_dict({k: v for k, v in with_adapter.state_dict().items() if ".adapter." not in "." + k})
    x = torch.randn(2, 2 * 2 * 3, 16)  # 2 clips of t=2 on a 2x3 grid -> temporal_size 4
    torch.testing.assert_close(with_adapter.eval()(x, (2, 3)), plain.eval()(x, (2, 3)))


def _brute_force_temporal_mix(x, grid, temporal_size, dwconv, conv):
    """Loop over videos and spatial positions; build each position's time series by hand."""
    b, n, c = x.shape
    h, w = grid
    t = n // (h * w)
    clips_per_video = temporal_size // t
    out = torch.zeros_like(x)
    for video in range(b // clips_per_video):
        for i in range(h):
            for j in range(w):
                series, where = [], []
                for clip in range(clips_per_video):
                    for k in range(t):
                        token = k * h * w + i * w + j
                        series.append(x[video * clips_per_video + clip, token])
                        where.append((video * clips_per_video + clip, token))
                seq = torch.stack(series, dim=1)[None]  # [1, C, T]
                mixed = conv(dwconv(seq))[0]
                for step, (bi, tok) in enumerate(where):
                    out[bi, tok] = mixed[:, step]
    return out


def test_temporal_mix_matches_per_position_loop_across_clips():
    torch.manual_seed(0)
    adapter = TemporalAdapter(embed_dims=8, mlp_ratio=0.5, temporal_size=6)
    x = torch.randn(4, 3 * 2 * 2, 4)  # 2 videos x 2 clips, t=3, 2x2 grid, C=4 (hidden)
    got = temporal_mix(x, (2, 2), 6, adapter.dwconv, adapter.conv)
    want = _brute_force_temporal_mix(x, (2, 2), 6, adapter.dwconv, adapter.conv)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_temporal_mix_rejects_partial_videos():
    adapter = TemporalAdapter(embed_dims=8, mlp_ratio=0.5, temporal_size=6)
    with pytest.raises(ValueError, match="total_frames"):
        temporal_mix(torch.randn(3, 12, 4), (2, 2), 6, adapter.dwconv, adapter.conv)


def test_adapter_vit_is_plain_vit_at_initialisation():
    torch.manual_seed(0)
    ada = _tiny().eval()
    plain = _tiny(VisionTransformerCP).eval()
    missing, unexpected = plain.load_state_dict(ada.state_dict(), strict=False)
    assert not missing and all(".adapter." in k for k in unexpected)
    x = torch.randn(2, 3, 4, 32, 32)  # 2 clips of 4 frames = 1 video of total_frames=8
    torch.testing.assert_close(ada(x), plain(x))


def test_only_adapters_train_and_receive_gradients():
    torch.manual_seed(0)
    model = _tiny(drop_path_rate=0.1, with_cp=True)
    model.freeze()
    with torch.no_grad():  # leave the zero init so every adapter parameter gets a gradient
        for _, adapter in model.named_adapters():
            adapter.up_proj.weight.normal_(std=0.1)
    model.train()(torch.randn(4, 3, 4, 32, 32)).pow(2).mean().backward()
    for name, p in model.named_parameters():
        if ".adapter." in name:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name
    assert {n.split(".")[1] for n, _ in model.named_adapters()} == {"0", "2"}


def test_freeze_vit_false_trains_everything_used():
    model = _tiny(freeze_vit=False)
    model.freeze()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"fc_norm.weight", "fc_norm.bias"}  # unused with return_feat_map=True


class _HalfTrainable(PlainAdapter):
    def trainable_parameters(self):
        return ((n, p) for n, p in self.named_parameters() if n.startswith("up_proj"))


def test_freeze_follows_what_each_adapter_declares():
    model = _tiny(adapter_factory=lambda spec: _HalfTrainable(embed_dims=spec.embed_dims))
    model.freeze()
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == [f"blocks.{i}.adapter.up_proj.{k}" for i in (0, 2) for k in ("bias", "weight")]


def test_adapter_factory_gets_spec_and_linear_factory_reaches_the_vit():
    specs, names = [], []

    def adapter_factory(spec):
        specs.append(spec)
        return TemporalAdapter(embed_dims=spec.embed_dims, mlp_ratio=spec.mlp_ratio, temporal_size=spec.temporal_size)

    def linear_factory(name, fin, fout, bias):
        names.append(name)
        return nn.Linear(fin, fout, bias=bias)

    _tiny(adapter_factory=adapter_factory, linear_factory=linear_factory, adapter_mlp_ratio=0.5)
    assert specs == [AdapterSpec(block_index=i, embed_dims=32, mlp_ratio=0.5, temporal_size=4) for i in (0, 2)]
    assert names == ["qkv", "proj", "fc1", "fc2"] * 3


def test_plain_adapter_and_bad_settings():
    model = _tiny(adapter_type="plain")
    assert isinstance(model.blocks[0].adapter, PlainAdapter) and model.blocks[1].adapter is None
    with pytest.raises(ValueError, match="adapter_type"):
        _tiny(adapter_type="lora")
    with pytest.raises(ValueError, match="adapter_index"):
        _tiny(adapter_index=[3])


def test_vit_s_parameter_counts_and_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="opentad"), torch.device("meta"):  # shapes only: fast
        model = VisionTransformerAdapter(
            embed_dims=384,
            depth=12,
            num_heads=6,
            mlp_ratio=4,
            num_frames=16,
            return_feat_map=True,
            total_frames=768,
            adapter_index=list(range(12)),
        )
    counts = model.log_parameter_counts()
    assert counts == {"vit": 21_879_936, "adapter": 1_006_860}
    per_block = 384 * 96 + 96 + 96 * 384 + 384 + 96 * 3 + 96 + 96 * 96 + 96 + 1
    assert per_block * 12 == counts["adapter"]
    assert "21879936" in caplog.text and "1006860" in caplog.text and "4.6%" in caplog.text


def test_position_table_is_resized_for_other_frame_sizes():
    torch.manual_seed(0)
    model = _tiny(VisionTransformerCP, img_size=64).eval()  # table for a 4x4 grid
    x = torch.randn(1, 3, 4, 32, 32)  # 2x2 grid
    tokens, grid = model.embed(x)
    assert grid == (2, 2, 2)
    from opentad.models.bricks.vit import resize_pos_embed

    want = model.patch_embed(x)[0] + resize_pos_embed(model.pos_embed, (4, 4), (2, 2))
    torch.testing.assert_close(tokens, want)
    with pytest.raises(ValueError, match="num_frames"):
        model.embed(torch.randn(1, 3, 6, 32, 32))
