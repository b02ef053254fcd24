"""Peak memory and step time of one training step of the end-to-end video backbone.

For each ViT size and fine-tuning mode, the backbone wrapper of the AdaTAD
configs is built with random weights and run on random frames
``[batch, 1, 3, frames, img, img]``: forward to ``[B, C, frames]``, a
squared-mean loss, backward and an AdamW step on the trainable parameters.
The table gives the trainable/total parameters, ``torch.cuda.max_memory_allocated``
and the median step time over ``--steps`` steps after ``--warmup`` steps, and
the loss of the first and last step: weights and frames are seeded
(``--seed``), so modes that differ only in where values wait (``*_bf16``
against ``*_offload``) must show the same losses, up to the nondeterminism of
the attention backward.

Examples::

    # the AdaTAD THUMOS setting on a GPU (batch 2, 768 frames, 160 px, fp16 autocast)
    python tools/benchmark_backbone.py --amp fp16
    python tools/benchmark_backbone.py --sizes s,b --modes adapter,fullft --amp fp16
    # CPU smoke test
    python tools/benchmark_backbone.py --sizes tiny --frames 32 --img-size 32 --steps 2 --warmup 1 --device cpu

A fine-tuning mode is an entry of ``MODES``: a function ``(size, args) ->
wrapper config`` (the ``model.backbone`` dict of a config); add new modes
there.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any, Callable, Dict, List

import torch
from torch import Tensor

from opentad.registry import BACKBONES, build

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
    """Checkpoint as upstream AdaTAD does: only blocks whose input requires grad; plain MLPs.

    Upstream skips checkpointing while the input needs no grad, i.e. for
    every block up to and including the first one with an adapter.
    """
    vit = wrapper.model.backbone
    first = min(vit.adapter_index)
    for index, block in enumerate(vit.blocks):
        block.mlp.chunked = False  # autograd's MLP, as mmcv's FFN upstream
        if index <= first:
            block.with_cp = False


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

_AMP = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(wrapper, frames, masks, amp, optimizer) -> Tensor:
    """One training step; returns the loss (detached, not synchronised)."""
    with torch.autocast(frames.device.type, dtype=amp, enabled=amp is not None):
        feats = wrapper(frames, masks)
    loss = feats.float().pow(2).mean()
    if loss.requires_grad:
        loss.backward()
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def _profile_step(wrapper, frames, masks, amp, optimizer, device) -> List:
    """One step under ``torch.cuda.memory`` history recording: the top consumers at its peak."""
    from opentad.utils.memory import peak_consumers

    _sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
    try:
        _step(wrapper, frames, masks, amp, optimizer)
        _sync(device)
        snapshot = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    return peak_consumers(snapshot, base_bytes=base, device=device.index or 0)[1]


def measure(size: str, mode: str, args: argparse.Namespace, device: torch.device) -> Dict[str, Any]:
    """Build one backbone and time ``args.steps`` training steps; returns one table row."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(args.seed)  # same weights and frames in every mode: equal arithmetic gives equal losses
    with torch.device(device):
        wrapper = build(MODES[mode](size, args), BACKBONES)
    if mode in MODE_POST_BUILD:
        MODE_POST_BUILD[mode](wrapper)
    wrapper.train()
    params = [p for p in wrapper.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4) if params else None
    frames = torch.randint(0, 256, (args.batch, 1, 3, args.frames, args.img_size, args.img_size), dtype=torch.uint8)
    frames = frames.to(device)
    masks = torch.ones(args.batch, args.frames, dtype=torch.bool, device=device)
    amp = _AMP[MODE_AMP.get(mode, args.amp)]
    times: List[float] = []
    losses: List[Tensor] = []
    for step in range(args.warmup + args.steps):
        _sync(device)
        start = time.perf_counter()
        losses.append(_step(wrapper, frames, masks, amp, optimizer))
        _sync(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    consumers = _profile_step(wrapper, frames, masks, amp, optimizer, device) if args.profile_memory else None
    return dict(
        size=size,
        mode=mode,
        frames=args.frames,
        amp=MODE_AMP.get(mode, args.amp),
        trainable=sum(p.numel() for p in params),
        total=sum(p.numel() for p in wrapper.parameters()),
        peak_gib=peak,
        step_s=statistics.median(times),
        losses=[float(v) for v in losses],
        consumers=consumers,
    )


def _row(r: Dict[str, Any], base: Dict[str, Any] = None) -> str:
    head = f"| {r['size']} | {r['frames']} | {r['mode']} |"
    if "error" in r:
        return f"{head} | | | {r['error']} | | | | |"
    peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "n/a (CPU)"
    millions = f"{r['trainable'] / 1e6:.3f} | {r['total'] / 1e6:.3f}"
    ratios = "| 1.00x | 1.00x" if base is r and r["peak_gib"] is not None else "| - | 1.00x"
    if base is not None and "error" not in base and base is not r:
        mem = f"{r['peak_gib'] / base['peak_gib']:.2f}x" if r["peak_gib"] is not None else "-"
        ratios = f"| {mem} | {r['step_s'] / base['step_s']:.2f}x"
    loss = f"{r['losses'][0]:.6g} → {r['losses'][-1]:.6g}"
    return f"{head} {r['amp']} | {millions} | {peak} | {r['step_s']:.3f} {ratios} | {loss} |"


def _print_consumers(r: Dict[str, Any]) -> None:
    print(f"\ntop memory consumers at the peak: {r['size']}, {r['frames']} frames, {r['mode']}")
    for label, size in r["consumers"]:
        print(f"  {size / 2**30:7.2f} GiB  {label}")
    print()


def _csv(value: str, allowed: Dict[str, Any], what: str) -> List[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what} {bad}; choose from {sorted(allowed)}")
    return items


def main(argv=None) -> List[Dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="s,b,l,h,g", help=f"comma-separated, from {sorted(SIZES)}")
    parser.add_argument("--modes", default="adapter,frozen,fullft", help=f"comma-separated, from {sorted(MODES)}")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", default="768", help="frames per video window (multiples of 16), comma-separated")
    parser.add_argument("--img-size", type=int, default=160)
    parser.add_argument("--adapter-start", type=int, default=0, help="first block with an adapter (20: g 224 px recipe)")
    parser.add_argument("--amp", choices=sorted(_AMP), default="none", help="autocast dtype (modes in MODE_AMP fix theirs)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and frames, the same in every mode")
    parser.add_argument("--backward-chunks", type=int, default=4, help="row groups of the *_chunked modes")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="cuDNN autotuning on, as training runs without deterministic kernels (its trial "
                             "workspaces count in the peak)")
    parser.add_argument("--profile-memory", action="store_true", help="name the top memory consumers at the peak")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    frame_counts = [int(f) for f in args.frames.split(",") if f.strip()]
    if any(f % CLIP_LEN for f in frame_counts):
        raise SystemExit(f"--frames must be multiples of {CLIP_LEN}, got {frame_counts}")
    sizes, modes = _csv(args.sizes, SIZES, "sizes"), _csv(args.modes, MODES, "modes")
    logging.getLogger("opentad").setLevel(logging.ERROR)  # the random-weights warning, once per model
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch}, {args.img_size} px, --amp {args.amp}, "
          f"adapters from block {args.adapter_start}, cudnn.benchmark {args.cudnn_benchmark}, median of {args.steps} "
          f"steps after {args.warmup}; "
          f"ratios against the first mode of each size and frame count")
    print("\n| size | frames | mode | autocast | trainable (M) | total (M) | peak memory (GiB) | step (s) "
          "| memory vs first | time vs first | loss, first → last step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for size in sizes:
        for frames in frame_counts:
            args.frames = frames
            base = None
            for mode in modes:
                try:
                    row = measure(size, mode, args, device)
                except torch.cuda.OutOfMemoryError:
                    row = dict(size=size, mode=mode, frames=frames, error="OOM")
                base = base or row
                rows.append(row)
                print(_row(row, base), flush=True)
    for row in rows:
        if row.get("consumers"):
            _print_consumers(row)
    return rows


if __name__ == "__main__":
    main()
