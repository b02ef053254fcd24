"""State-dict names as upstream, and official VideoMAE checkpoints converted and loaded."""
import logging
import runpy
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from opentad.models.backbones.pretrained import convert_videomae_file, load_pretrained, read_checkpoint
from opentad.registry import BACKBONES, build

ROOT_TOOLS = "tools/model_converters"
DIMS, DEPTH, HIDDEN, PATCH = 32, 2, 64, 8


def _upstream_names(depth, adapter_blocks):
    """Names of upstream OpenTAD's VisionTransformerAdapter (mmcv PatchEmbed/FFN, q/v bias, fc_norm)."""
    names = ["pos_embed", "patch_embed.projection.weight", "patch_embed.projection.bias"]
    for i in range(depth):
        b = f"blocks.{i}."
        names += [b + "norm1.weight", b + "norm1.bias", b + "attn.q_bias", b + "attn.v_bias"]
        names += [b + "attn.qkv.weight", b + "attn.proj.weight", b + "attn.proj.bias"]
        names += [b + "norm2.weight", b + "norm2.bias"]
        names += [b + "mlp.layers.0.0.weight", b + "mlp.layers.0.0.bias"]  # mmcv FFN: fc1
        names += [b + "mlp.layers.1.weight", b + "mlp.layers.1.bias"]  # fc2
        if i in adapter_blocks:
            modules = ("dwconv", "conv", "down_proj", "up_proj")
            names += [b + f"adapter.{m}.{p}" for m in modules for p in ("weight", "bias")]
            names += [b + "adapter.gamma"]
    return names + ["fc_norm.weight", "fc_norm.bias"]


def _wrapper_cfg(pretrain=None, **backbone):
    vit = dict(
        type="VisionTransformerAdapter",
        img_size=16,
        patch_size=PATCH,
        embed_dims=DIMS,
        depth=DEPTH,
        num_heads=2,
        mlp_ratio=HIDDEN / DIMS,
        num_frames=4,
        return_feat_map=True,
        total_frames=4,
        adapter_index=[1],
    )
    vit.update(backbone)
    return dict(type="mmaction.Recognizer3D", backbone=vit, custom=dict(pretrain=pretrain, norm_eval=False))


def test_detector_level_names_nest_as_upstream():
    detector = nn.Module()
    detector.backbone = build(_wrapper_cfg(), BACKBONES)
    got = set(detector.state_dict())
    want = {"backbone.model.backbone." + n for n in _upstream_names(DEPTH, {1})}
    assert got == want
    missing, unexpected = detector.load_state_dict({k: torch.zeros_like(v) for k, v in detector.state_dict().items()})
    assert not missing and not unexpected


def _official_state_dict(depth=DEPTH, head=5):
    """A small checkpoint in the official VideoMAE (timm) layout."""
    g = torch.Generator().manual_seed(0)
    sd = {"patch_embed.proj.weight": torch.randn(DIMS, 3, 2, PATCH, PATCH, generator=g) * 0.05}
    sd["patch_embed.proj.bias"] = torch.randn(DIMS, generator=g) * 0.05
    for i in range(depth):
        b = f"blocks.{i}."
        for name, shape in [
            ("norm1.weight", (DIMS,)), ("norm1.bias", (DIMS,)), ("attn.q_bias", (DIMS,)), ("attn.v_bias", (DIMS,)),
            ("attn.qkv.weight", (3 * DIMS, DIMS)), ("attn.proj.weight", (DIMS, DIMS)), ("attn.proj.bias", (DIMS,)),
            ("norm2.weight", (DIMS,)), ("norm2.bias", (DIMS,)), ("mlp.fc1.weight", (HIDDEN, DIMS)),
            ("mlp.fc1.bias", (HIDDEN,)), ("mlp.fc2.weight", (DIMS, HIDDEN)), ("mlp.fc2.bias", (DIMS,)),
        ]:
            offset = 1.0 if name.startswith("norm") and "weight" in name else 0.0
            sd[b + name] = torch.randn(*shape, generator=g) * 0.1 + offset
    sd.update({"fc_norm.weight": torch.ones(DIMS), "fc_norm.bias": torch.zeros(DIMS)})
    sd.update({"head.weight": torch.randn(head, DIMS, generator=g), "head.bias": torch.zeros(head)})
    return sd


def _reference_forward(sd, x, heads=2):
    """Official VideoMAE forward written out with functional ops, straight from the official names."""
    tok = F.conv3d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=(2, PATCH, PATCH))
    t, h, w = tok.shape[2:]
    tok = tok.flatten(2).transpose(1, 2)
    pos = torch.tensor(
        [[p / 10000 ** (2 * (j // 2) / DIMS) for j in range(DIMS)] for p in range(tok.shape[1])], dtype=torch.float64
    )
    pos[:, 0::2], pos[:, 1::2] = pos[:, 0::2].sin(), pos[:, 1::2].cos()
    tok = tok + pos.float()
    for i in range(DEPTH):
        p = lambda n: sd[f"blocks.{i}.{n}"]  # noqa: E731
        y = F.layer_norm(tok, (DIMS,), p("norm1.weight"), p("norm1.bias"), eps=1e-6)
        qkv = F.linear(y, p("attn.qkv.weight"), torch.cat([p("attn.q_bias"), torch.zeros(DIMS), p("attn.v_bias")]))
        q, k, v = qkv.reshape(*qkv.shape[:2], 3, heads, DIMS // heads).permute(2, 0, 3, 1, 4)
        att = ((q * (DIMS // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
        tok = tok + F.linear(att.transpose(1, 2).flatten(2), p("attn.proj.weight"), p("attn.proj.bias"))
        y = F.layer_norm(tok, (DIMS,), p("norm2.weight"), p("norm2.bias"), eps=1e-6)
        hidden = F.gelu(F.linear(y, p("mlp.fc1.weight"), p("mlp.fc1.bias")))
        tok = tok + F.linear(hidden, p("mlp.fc2.weight"), p("mlp.fc2.bias"))
    return tok.reshape(x.shape[0], t, h, w, DIMS).permute(0, 4, 1, 2, 3)


def test_converter_tool_maps_official_layout_and_model_reproduces_official_forward(tmp_path, monkeypatch, caplog):
    official = _official_state_dict()
    src, dst = tmp_path / "official.pth", tmp_path / "out" / "converted.pth"
    torch.save({"module": official}, src)
    argv = ["convert_videomae.py", str(src), str(dst), "--img-size", "16", "--num-frames", "4"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.syspath_prepend(ROOT_TOOLS)
    runpy.run_path(f"{ROOT_TOOLS}/convert_videomae.py", run_name="__main__")
    converted = read_checkpoint(str(dst))
    assert torch.equal(converted["backbone.blocks.1.mlp.layers.0.0.weight"], official["blocks.1.mlp.fc1.weight"])
    assert torch.equal(converted["backbone.blocks.0.mlp.layers.1.bias"], official["blocks.0.mlp.fc2.bias"])
    assert torch.equal(converted["backbone.patch_embed.projection.weight"], official["patch_embed.proj.weight"])
    assert torch.equal(converted["cls_head.fc_cls.weight"], official["head.weight"])
    assert converted["backbone.pos_embed"].shape == (1, 2 * 2 * 2, DIMS)

    with caplog.at_level(logging.INFO, logger="opentad"):
        wrapper = build(_wrapper_cfg(pretrain=str(dst)), BACKBONES)
    report = load_pretrained(wrapper.model, str(dst))
    adapter_keys = wrapper.model.backbone.blocks[1].adapter.state_dict()
    assert report.missing == [f"backbone.blocks.1.adapter.{n}" for n in adapter_keys]
    assert report.unexpected == ["cls_head.fc_cls.weight", "cls_head.fc_cls.bias"] and not report.mismatched
    assert "missing keys" not in caplog.text and "unexpected keys" not in caplog.text  # nothing worth a warning

    x = torch.randn(1, 3, 4, 16, 16)
    vit = wrapper.model.backbone.eval()
    torch.testing.assert_close(vit(x), _reference_forward(official, x), atol=1e-4, rtol=1e-4)


def test_official_file_loads_directly_and_v2_tool_checks_arch(tmp_path, monkeypatch, capsys):
    src = tmp_path / "official.pth"
    torch.save({"model": _official_state_dict()}, src)
    wrapper = build(_wrapper_cfg(pretrain=str(src), img_size=16), BACKBONES)  # converted on the fly
    q_bias = wrapper.model.backbone.blocks[0].attn.q_bias
    torch.testing.assert_close(q_bias, _official_state_dict()["blocks.0.attn.q_bias"])
    monkeypatch.setattr(sys, "argv", ["convert_videomaev2.py", str(src), str(tmp_path / "g.pth")])
    monkeypatch.syspath_prepend(ROOT_TOOLS)
    with pytest.raises(SystemExit) as info:  # bad input: one line on stderr, exit status 1
        runpy.run_path(f"{ROOT_TOOLS}/convert_videomaev2.py", run_name="__main__")
    err = capsys.readouterr().err.strip()
    assert info.value.code == 1 and "\n" not in err and "not the giant architecture" in err
    assert not (tmp_path / "g.pth").exists()
    with pytest.raises(ValueError, match="small"):
        convert_videomae_file(str(src), str(tmp_path / "s.pth"), arch="small")


def test_shape_mismatch_and_unknown_keys_are_reported(tmp_path, caplog):
    converted = {"backbone." + k: v for k, v in build(_wrapper_cfg(), BACKBONES).model.backbone.state_dict().items()}
    converted["backbone.fc_norm.weight"] = torch.ones(DIMS + 1)
    converted["backbone.extra.weight"] = torch.ones(1)
    path = tmp_path / "c.pth"
    torch.save({"state_dict": converted}, path)
    wrapper = build(_wrapper_cfg(), BACKBONES)
    with caplog.at_level(logging.WARNING, logger="opentad"):
        report = load_pretrained(wrapper.model, str(path))
    assert report.missing == []  # the conflicting key is reported once, as mismatched
    assert report.unexpected == ["backbone.extra.weight"]
    assert len(report.mismatched) == 1 and "fc_norm.weight" in report.mismatched[0]
    assert "extra.weight" in caplog.text and "shape-mismatched" in caplog.text


def test_missing_pretrain_file_raises_with_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match="convert_videomae"):
        build(_wrapper_cfg(pretrain=str(tmp_path / "nope.pth")), BACKBONES)
