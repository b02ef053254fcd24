"""Fine-tuning modes of ``tools/benchmark_backbone.py``: ViT sizes and backbone-wrapper configs.

A mode is a function ``(size, args) -> wrapper config`` (the ``model.backbone``
dict of a config), where ``args`` carries ``frames``, ``adapter_start`` and
``backward_chunks``; ``MODE_AMP`` fixes the autocast dtype of the memory modes
and ``MODE_POST_BUILD`` changes a built wrapper (upstream's checkpointing).
See ``docs/benchmarks.md`` and ``docs/qlora.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Dict

import torch

__all__ = ["CLIP_LEN", "SIZES", "MODES", "MODE_AMP", "MODE_POST_BUILD", "upstream_checkpointing"]

CLIP_LEN = 16

#: ViT sizes: VideoMAE S/B/L/H and VideoMAEv2-g (patch 14), plus a tiny one for smoke tests.
SIZES: Dict[str, Dict[str, Any]] = {
    "tiny": dict(embed_dims=32, depth=2, num_heads=2, patch_size=16),
    "s": dict(embed_dims=384, depth=12, num_heads=6, patch_size=16),
    "b": dict(embed_dims=768, depth=12, num_heads=12, patch_size=16),
    "l": dict(embed_dims=1024, depth=24, num_heads=16, patch_size=16),
    "h": dict(embed_dims=1280, depth=32, num_heads=16, patch_size=16),
    "g": dict(embed_dims=1408, depth=40, num_heads=16, patch_size=14, mlp_ratio=48 / 11),
}


def _vit(size: str, **extra: Any) -> Dict[str, Any]:
    cfg = dict(img_size=224, mlp_ratio=4, qkv_bias=True, num_frames=CLIP_LEN, return_feat_map=True)
    cfg.update(norm_cfg=dict(type="LN", eps=1e-6))
    cfg.update(SIZES[size])
    cfg.update(extra)
    return cfg


def _wrapper(backbone: Dict[str, Any], args: argparse.Namespace, **custom: Any) -> Dict[str, Any]:
    chunks = args.frames // CLIP_LEN
    options = dict(
        pretrain=None,
        pre_processing_pipeline=[
            dict(type="Rearrange", keys=["frames"], ops="b n c (t1 t) h w -> (b t1) n c t h w", t1=chunks)
        ],
        post_processing_pipeline=[
            dict(type="Reduce", keys=["feats"], ops="b n c t h w -> b c t", reduction="mean"),
            dict(type="Rearrange", keys=["feats"], ops="(b t1) c t -> b c (t1 t)", t1=chunks),
            dict(type="Interpolate", keys=["feats"], size=args.frames),
        ],
    )
    options.update(custom)
    return dict(
        type="mmaction.Recognizer3D",
        backbone=backbone,
        data_preprocessor=dict(
            type="mmaction.ActionDataPreprocessor",
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            format_shape="NCTHW",
        ),
        custom=options,
    )


def adapter_mode(size: str, args: argparse.Namespace) -> Dict[str, Any]:
    """AdaTAD: frozen ViT, temporal adapters in every block, activation checkpointing."""
    depth = SIZES[size]["depth"]
    vit = _vit(
        size,
        type="VisionTransformerAdapter",
        drop_path_rate=0.1,
        with_cp=True,
        total_frames=args.frames,
        adapter_index=list(range(args.adapter_start, depth)),
    )
    return _wrapper(vit, args, norm_eval=False, freeze_backbone=False)


def _memory_mode(
    base: Callable[[str, argparse.Namespace], Dict[str, Any]], *, offload: bool, chunked: bool = False
) -> Callable[[str, argparse.Namespace], Dict[str, Any]]:
    """``base`` with the frozen weights and frames in bf16 (run under bf16 autocast), optionally offloading
    and recomputing the frozen attention and MLP in ``--backward-chunks`` row groups."""

    def mode(size: str, args: argparse.Namespace) -> Dict[str, Any]:
        wrapper = base(size, args)
        wrapper["custom"].update(frozen_dtype="bf16", offload_activations=offload)
        if chunked:
            wrapper["custom"].update(backward_chunks=args.backward_chunks)
        return wrapper

    extra = (", block inputs offloaded" if offload else "") + (", backward in row groups" if chunked else "")
    mode.__doc__ = f"{base.__doc__} Frozen weights and frames in bf16{extra}."
    return mode


def frozen_mode(size: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Frozen backbone: no autograd through the ViT."""
    return _wrapper(_vit(size, type="VisionTransformerCP", with_cp=False), args, norm_eval=True, freeze_backbone=True)


def fullft_mode(size: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Full fine-tuning with activation checkpointing."""
    vit = _vit(size, type="VisionTransformerCP", drop_path_rate=0.1, with_cp=True)
    return _wrapper(vit, args, norm_eval=False, freeze_backbone=False)


def _qlora_mode(**qlora: Any) -> Callable[[str, argparse.Namespace], Dict[str, Any]]:
    """QLoRA-AdaTAD: the adapter mode's ViT as ``VisionTransformerQLoRA`` with ``qlora`` keys."""

    def mode(size: str, args: argparse.Namespace) -> Dict[str, Any]:
        wrapper = adapter_mode(size, args)
        wrapper["backbone"].update(
            type="VisionTransformerQLoRA", lora_r=16, lora_alpha=32, lora_dropout=0.1, **qlora
        )
        return wrapper

    mode.__doc__ = f"QLoRA-AdaTAD with {qlora}"
    return mode


def upstream_checkpointing(wrapper: torch.nn.Module) -> None:
    """Checkpoint as upstream AdaTAD does: only blocks whose input requires grad; autograd's MLP (mmcv's FFN).

    Upstream skips checkpointing while the input needs no grad, i.e. for
    every block up to and including the first one with an adapter.
    """
    wrapper.set_memory_policy(dataclasses.replace(wrapper.memory, checkpoint_needs_input_grad=True, frozen_mlp=False))


_qlora_both = _qlora_mode(quantize_bits=4, quantize_backbone=True)

#: fine-tuning modes: name -> ``(size, args) -> backbone wrapper config``.
MODES: Dict[str, Callable[[str, argparse.Namespace], Dict[str, Any]]] = {
    # upstream OpenTAD's AdaTAD: fp32 frames and weights under --amp, checkpointing as upstream
    "upstream": adapter_mode,
    # ours: every block checkpointed, also those whose input needs no grad
    "adapter": adapter_mode,
    "frozen": frozen_mode,
    "fullft": fullft_mode,
    # the design note's QLoRA: 4-bit NF4 adapter projections + LoRA
    "qlora": _qlora_mode(quantize_bits=4),
    "qlora8": _qlora_mode(quantize_bits=8),
    # NF4 frozen ViT (adapter projections float, frozen, with LoRA)
    "qlora_backbone": _qlora_mode(quantize_adapters=False, quantize_backbone=True),
    # both quantized
    "qlora_both": _qlora_both,
    # the memory work (docs/qlora.md): bf16 storage, then block inputs offloaded to host memory
    "adapter_bf16": _memory_mode(adapter_mode, offload=False),
    "adapter_offload": _memory_mode(adapter_mode, offload=True),
    "qlora_bf16": _memory_mode(_qlora_both, offload=False),
    "qlora_offload": _memory_mode(_qlora_both, offload=True),
    "qlora_a_offload": _memory_mode(_qlora_mode(quantize_bits=4), offload=True),  # float (bf16) ViT
    # and the frozen attention/MLP recomputed a few clips at a time (bricks/chunked_residual.py)
    "adapter_chunked": _memory_mode(adapter_mode, offload=True, chunked=True),
    "qlora_chunked": _memory_mode(_qlora_both, offload=True, chunked=True),
}

#: modes whose autocast dtype is fixed (their frozen weights are bf16); others use ``--amp``
MODE_AMP: Dict[str, str] = {
    m: "bf16" for m in ("adapter_bf16", "adapter_offload", "qlora_bf16", "qlora_offload", "qlora_a_offload",
                        "adapter_chunked", "qlora_chunked")
}

#: changes made to a mode's wrapper after building it
MODE_POST_BUILD: Dict[str, Callable[[torch.nn.Module], None]] = {"upstream": upstream_checkpointing}
