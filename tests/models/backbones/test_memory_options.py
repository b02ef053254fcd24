"""Memory options of the backbone wrapper: bf16 storage of what is frozen, graph-free leading blocks, offloading."""
import copy

import pytest
import torch

from opentad.models.memory.offload import OffloadSavedTensors
from opentad.registry import BACKBONES, ConfigError, build

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
WINDOW, CLIP, DIMS = 16, 4, 16


def _cfg(adapter_index=(0, 1), depth=2, vit_type="VisionTransformerAdapter", **custom):
    chunks = WINDOW // CLIP
    vit = dict(type=vit_type, img_size=32, patch_size=16, embed_dims=DIMS, depth=depth, num_heads=2,
               num_frames=CLIP, return_feat_map=True, with_cp=True)
    if vit_type != "VisionTransformerCP":
        vit.update(total_frames=WINDOW, adapter_index=list(adapter_index))
    options = dict(
        pretrain=None,
        pre_processing_pipeline=[dict(type="Rearrange", keys=["frames"], ops="b n c (t1 t) h w -> (b t1) n c t h w",
                                      t1=chunks)],
        post_processing_pipeline=[
            dict(type="Reduce", keys=["feats"], ops="b n c t h w -> b c t", reduction="mean"),
            dict(type="Rearrange", keys=["feats"], ops="(b t1) c t -> b c (t1 t)", t1=chunks),
        ],
        norm_eval=False,
    )
    options.update(custom)
    return dict(type="mmaction.Recognizer3D", backbone=vit, custom=options,
                data_preprocessor=dict(type="mmaction.ActionDataPreprocessor", mean=MEAN, std=STD,
                                       format_shape="NCTHW"))


def _frames(batch=2, seed=0):
    torch.manual_seed(seed)
    return torch.randint(0, 256, (batch, 1, 3, WINDOW, 32, 32), dtype=torch.uint8)


def _randomise_adapters(wrapper, seed=1):
    """Adapters start as the identity; give them weights so that gradients flow through every part."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in wrapper.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.1)


def _run(wrapper, x, dtype=None):
    wrapper.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = wrapper(x)
    out.float().square().mean().backward()
    grads = {n: p.grad for n, p in wrapper.named_parameters() if p.grad is not None}
    return out.detach(), grads


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frozen_dtype_stores_frozen_values_in_bf16_and_trains_the_same_parameters(seed):
    torch.manual_seed(seed)
    ref = build(_cfg(), BACKBONES)
    _randomise_adapters(ref)
    low = build(_cfg(frozen_dtype="bf16"), BACKBONES)
    low.load_state_dict(ref.state_dict())  # casts into the bf16 storage
    trainable = {n for n, p in ref.named_parameters() if p.requires_grad}
    for name, p in low.named_parameters():
        assert p.dtype == (torch.float32 if name in trainable else torch.bfloat16), name
    assert low.model.backbone.pos_embed.dtype == torch.bfloat16
    out_ref, grads_ref = _run(ref, _frames())
    out_low, grads_low = _run(low, _frames(), dtype=torch.bfloat16)
    assert set(grads_low) == set(grads_ref) == trainable
    assert out_low.dtype == torch.float32
    scale = out_ref.abs().max()
    assert (out_low - out_ref).abs().max() < 0.05 * scale  # bf16 rounding, not a different model
    for name in trainable:
        error = (grads_low[name].float() - grads_ref[name]).norm() / grads_ref[name].norm()
        assert error < 0.1, (name, error)


def test_frozen_dtype_turns_autocast_on_and_needs_a_known_value():
    torch.manual_seed(0)
    low = build(_cfg(frozen_dtype="bf16"), BACKBONES)
    _randomise_adapters(low)
    plain, _ = _run(low, _frames())  # no autocast around it (e.g. solver.amp ignored on a CPU)
    inside, _ = _run(low, _frames(), dtype=torch.bfloat16)
    torch.testing.assert_close(plain, inside, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="frozen_dtype = 'bfloat16' .*expected one of"):
        build(_cfg(frozen_dtype="bfloat16"), BACKBONES)


def _saved_block_inputs(wrapper, x, dtype=None):
    """Tensors of the blocks' token shape that autograd keeps between forward and backward."""
    offload = OffloadSavedTensors(min_bytes=0, force=True)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None), offload:
        out = wrapper(x)
    tokens = (x.shape[0] * WINDOW // CLIP, (CLIP // 2) * 2 * 2, DIMS)
    saved = [ref() for ref in offload._saved]
    inputs = [s.host for s in saved if s is not None and tuple(s.host.shape) == tokens]
    return out, inputs


def test_block_inputs_kept_for_backward_are_in_the_frozen_dtype():
    low = build(_cfg(frozen_dtype="bf16"), BACKBONES)
    _randomise_adapters(low)
    _, inputs = _saved_block_inputs(low, _frames(), dtype=torch.bfloat16)
    assert len(inputs) == 2 and all(t.dtype == torch.bfloat16 for t in inputs)  # not promoted by float32 adapters
    ref = build(_cfg(), BACKBONES)
    _, inputs = _saved_block_inputs(ref, _frames())
    assert len(inputs) == 2 and all(t.dtype == torch.float32 for t in inputs)


def test_blocks_before_the_first_adapter_run_without_graph():
    wrapper = build(_cfg(adapter_index=[2], depth=3), BACKBONES)
    _randomise_adapters(wrapper)
    vit = wrapper.model.backbone
    assert vit.graph_free_blocks() == 2
    out, inputs = _saved_block_inputs(wrapper, _frames())
    assert len(inputs) == 1  # only the input of block 2 is kept
    # same gradients as when every block runs under autograd
    _, grads = _run(wrapper, _frames())
    full = copy.deepcopy(wrapper)
    full.model.backbone.graph_free_blocks = lambda: 0
    _, grads_full = _run(full, _frames())
    assert set(grads) == set(grads_full) and grads
    for name in grads:
        torch.testing.assert_close(grads[name], grads_full[name], rtol=0, atol=0)
    fullft = build(_cfg(vit_type="VisionTransformerCP", adapter_index=()), BACKBONES)
    assert fullft.model.backbone.graph_free_blocks() == 0


def test_preprocessor_normalises_into_bf16_in_slices_like_float32(monkeypatch):
    from opentad.models.backbones import data_preprocessor as module

    monkeypatch.setattr(module, "_SLICE_BYTES", 3 * 32 * 32 * 4 * 5)  # 5 frames of one sample per slice: ragged end
    pre = build(dict(type="mmaction.ActionDataPreprocessor", mean=MEAN, std=STD, format_shape="NCTHW"), BACKBONES)
    x = _frames(batch=1)
    want = ((x.float() - torch.tensor(MEAN).view(3, 1, 1, 1)) / torch.tensor(STD).view(3, 1, 1, 1)).bfloat16()
    got = pre(x, dtype=torch.bfloat16)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, want)
    assert torch.equal(pre(x), pre(x, dtype=torch.float32))


def test_backward_chunks_reach_every_block_and_keep_the_gradients():
    ref = build(_cfg(), BACKBONES).train()
    chunked = build(_cfg(backward_chunks=3), BACKBONES).train()
    assert chunked.model.backbone.memory_policy.backward_chunks == 3 and chunked.memory.checkpoint
    assert ref.model.backbone.memory_policy.backward_chunks == 1
    _randomise_adapters(ref)
    chunked.load_state_dict(ref.state_dict())
    x = _frames()
    out_ref, grads_ref = _run(ref, x)
    out, grads = _run(chunked, x)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-5)
    assert set(grads) == set(grads_ref) and grads
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=1e-4, atol=1e-6, msg=name)
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="backward_chunks"):
            build(_cfg(backward_chunks=bad), BACKBONES)
