"""The adapter state of a model: what trains, what a checkpoint holds, verification, merging, counting.

The one place outside the layers that knows quantized layers and LoRA:

* what trains: modules declare it (``trainable_parameters()``); a backbone's
  ``freeze()`` applies it once after building (:func:`train_declared`);
* what is saved: :func:`checkpoint_state` / :func:`load_checkpoint_state`, the
  detector's hooks that :mod:`opentad.utils.checkpoint` and the EMA call.
  bitsandbytes' ``Linear4bit`` cannot load its own state_dict into a fresh
  layer (bitsandbytes issue #1946), so a model with quantized layers is saved as
  ``{"format", "float", "quantized", "checksums"}``: trainable and float tensors
  as they are, each quantized layer as its packed bytes and statistics
  (:func:`~opentad.models.bricks.quant_io.export_quantized`); frozen backbone
  tensors that a wrapper rebuilds from its ``pretrain`` file only as checksums.
  Only tensors and plain data (``torch.load(weights_only=True)``); the round trip is exact;
* verification: loading compares the rebuilt base with those checksums (a
  changed pretrain file is an error); :func:`quantized_tensors` are what the
  consistency check fingerprints;
* merging: :func:`merged_state_dict` folds LoRA into the dequantized base;
* counting: :func:`opentad.utils.misc.count_parameters` (trainable, total,
  packed), split by adapter with :func:`count_adapter_parameters`.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
from torch import nn

from opentad.models.bricks.lora import LoRALinear
from opentad.models.bricks.quant import dequantize_weight, is_quantized
from opentad.models.bricks.quant_io import export_quantized, import_quantized
from opentad.models.bricks.vit_adapter import AdapterBase
from opentad.utils.misc import count_parameters
from opentad.utils.safe_load import torch_load

logger = logging.getLogger(__name__)

__all__ = [
    "QLORA_FORMAT", "train_declared", "count_adapter_parameters", "quantized_modules", "has_quantized_layers",
    "quantized_tensors", "load_adapter_pretrain", "qlora_state_dict", "load_qlora_state_dict", "checkpoint_state",
    "load_checkpoint_state", "state_tensors", "needs_pretrained_base", "merged_state_dict",
]

QLORA_FORMAT = "opentad-qlora-v1"
_ADAPTER_KEY = re.compile(r"(?:^|\.)blocks\.(\d+)\.adapter\.(.+)$")


def train_declared(module: nn.Module) -> None:
    """Let train what each sub-module of ``module`` declares with ``trainable_parameters()``; nothing else changes."""
    for sub in module.modules():
        declared = getattr(sub, "trainable_parameters", None)
        for _, param in declared() if callable(declared) else ():
            param.requires_grad_(True)


def count_adapter_parameters(module: nn.Module) -> Tuple[int, int]:
    """``(non-adapter, adapter)`` parameter totals; adapters are ``AdapterBase`` sub-modules, quantized
    weights count at their logical (unpacked) size."""
    adapters = sum(count_parameters(m).total for m in module.modules() if isinstance(m, AdapterBase))
    return count_parameters(module).total - adapters, adapters


def quantized_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """``{qualified name: layer}`` of every bitsandbytes quantized layer in ``model``."""
    return {name: m for name, m in model.named_modules() if is_quantized(m)}


def has_quantized_layers(model: nn.Module) -> bool:
    return any(is_quantized(m) for m in model.modules())


def quantized_tensors(model: nn.Module) -> Dict[str, torch.Tensor]:
    """``{"{layer}.{key}": tensor}``: every quantized layer's packed bytes and statistics, as checkpoints save them."""
    return {f"{name}.{key}": value for name, layer in quantized_modules(model).items()
            for key, value in export_quantized(layer).items()}


def _read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    ckpt = torch_load(path, what="adapter_pretrain checkpoint")  # weights-only; one-line errors
    if isinstance(ckpt, Mapping):
        for key in ("state_dict_ema", "state_dict", "model"):
            if key in ckpt and isinstance(ckpt[key], Mapping):
                return dict(ckpt[key])
        return dict(ckpt)
    raise ValueError(f"adapter_pretrain {path}: expected a dict of tensors, got {type(ckpt).__name__}")


@torch.no_grad()
def load_adapter_pretrain(vit: nn.Module, path: str) -> None:
    """Fill QLoRA adapters (still float) from an AdaTAD checkpoint.

    Keys ``...blocks.{i}.adapter.{down_proj,up_proj}.{weight,bias}``,
    ``dwconv.*``, ``conv.*`` and ``gamma`` are taken, whatever their prefix
    (ours, OpenTAD's ``backbone.model.backbone.``, DDP's ``module.``). A
    projection bias in the file becomes a frozen float bias of the projection,
    so the adapter computes what the AdaTAD adapter computed.

    Raises:
        FileNotFoundError: no such file.
        KeyError: a block of ``vit`` with an adapter has no adapter weights in the file
            (the message lists the blocks the file has).
        ValueError: a tensor's shape differs from the model's.
    """
    found: Dict[int, Dict[str, torch.Tensor]] = {}
    for key, value in _read_state_dict(path).items():
        match = _ADAPTER_KEY.search(key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    for index, block in enumerate(vit.blocks):
        adapter = block.adapter
        if adapter is None:
            continue
        if index not in found:
            raise KeyError(f"adapter_pretrain {path} has no adapter for block {index}; it has blocks {sorted(found)}")
        for name, value in found[index].items():
            owner_name, _, attr = name.rpartition(".")
            owner = adapter.get_submodule(owner_name) if owner_name else adapter
            if isinstance(owner, LoRALinear):
                owner = owner.base_layer
            if attr == "bias" and getattr(owner, "bias", "absent") is None:
                owner.bias = nn.Parameter(value.detach().clone().float(), requires_grad=False)
                continue
            target = getattr(owner, attr)
            if tuple(target.shape) != tuple(value.shape):
                raise ValueError(
                    f"adapter_pretrain {path}: block {index} {name} has shape {tuple(value.shape)}, "
                    f"the model expects {tuple(target.shape)}"
                )
            target.copy_(value)
    logger.info("loaded adapter weights of %d blocks from %s", len(found), path)


def _rebuildable_prefixes(model: nn.Module) -> List[str]:
    """Prefixes of backbones that a wrapper filled from a ``pretrain`` file."""
    prefixes = []
    for name, module in model.named_modules():
        options = getattr(module, "options", None)
        if options is not None and getattr(options, "pretrain", None) and hasattr(module, "model"):
            prefixes.append(f"{name}.model.backbone." if name else "model.backbone.")
    return prefixes


def _checksum(t: torch.Tensor) -> torch.Tensor:
    """Plain and position-weighted sums, computed where the tensor lives (no host copy)."""
    data = t.detach().reshape(-1).double()
    weights = torch.arange(1, data.numel() + 1, dtype=torch.float64, device=data.device) % 9973 + 1
    count = torch.tensor(float(data.numel()), dtype=torch.float64, device=data.device)
    return torch.stack([data.sum(), (data * weights).sum(), count]).cpu()


def _bnb_owned(key: str, quantized: Iterable[str]) -> bool:
    """State-dict entries that bitsandbytes writes for a quantized layer (its bias is a plain float)."""
    return any(key.startswith(q + ".") and key != q + ".bias" for q in quantized)


def _is_rebuildable(name: str, prefixes: Iterable[str]) -> bool:
    return any(name.startswith(p) for p in prefixes) and ".adapter." not in name


def qlora_state_dict(model: nn.Module, *, omit_rebuildable: bool = True) -> Dict[str, Any]:
    """A checkpointable state of a model with quantized layers (module docstring).

    Returns:
        ``{"format", "float": {key: tensor}, "quantized": {module: {key: tensor}},
        "checksums": {key or module: tensor}}``.
    """
    quantized = quantized_modules(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    prefixes = _rebuildable_prefixes(model) if omit_rebuildable else []
    out: Dict[str, Dict] = {"float": {}, "quantized": {}, "checksums": {}}
    for key, value in model.state_dict().items():
        if _bnb_owned(key, quantized):
            continue  # bitsandbytes' own entries; the export below replaces them
        if key not in trainable and _is_rebuildable(key, prefixes):
            out["checksums"][key] = _checksum(value)
        else:
            out["float"][key] = value.detach().cpu().clone()
    for name, layer in quantized.items():
        if _is_rebuildable(name + ".", prefixes):
            out["checksums"][name] = _checksum(layer.weight.data)
        else:
            out["quantized"][name] = export_quantized(layer)
    return {"format": QLORA_FORMAT, **out}


def load_qlora_state_dict(
    model: nn.Module, state: Mapping[str, Any], *, strict: bool = True
) -> Tuple[List[str], List[str]]:
    """Load what :func:`qlora_state_dict` saved into a model rebuilt from the same config.

    Returns:
        ``(missing, unexpected)`` keys (empty lists when strict succeeds).

    Raises:
        ValueError: not a QLoRA checkpoint, a rebuilt base tensor whose checksum
            differs from the saved one (names the key), or, with ``strict``,
            missing/unexpected keys (listed).
    """
    if state.get("format") != QLORA_FORMAT:
        raise ValueError(f"not a QLoRA checkpoint state (format={state.get('format')!r}, expected {QLORA_FORMAT!r})")
    quantized = quantized_modules(model)
    own = {k: v for k, v in model.state_dict().items() if not _bnb_owned(k, quantized)}
    floats, packed, sums = dict(state["float"]), dict(state["quantized"]), dict(state["checksums"])
    for name, saved in sums.items():
        current = own[name] if name in own else quantized[name].weight.data if name in quantized else None
        # float64 sums: summation order differs between devices, so compare to 1e-9, not bit for bit
        if current is not None and not torch.allclose(_checksum(current), saved, rtol=1e-9, atol=0.0):
            raise ValueError(
                f"checkpoint was trained on other base weights for {name!r}: the backbone rebuilt from the "
                f"config's pretrain file differs (was the pretrain file or the quantization changed?)"
            )
    missing = sorted(set(own) - set(floats) - set(sums)) + sorted(set(quantized) - set(packed) - set(sums))
    unexpected = sorted(set(floats) - set(own)) + sorted(set(packed) - set(quantized))
    if strict and (missing or unexpected):
        raise ValueError(f"QLoRA checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")
    model.load_state_dict({k: v for k, v in floats.items() if k in own}, strict=False)
    for name, layer_state in packed.items():
        if name in quantized:
            import_quantized(quantized[name], layer_state)
    return missing, unexpected


def checkpoint_state(model: nn.Module) -> Dict[str, Any]:
    """What a checkpoint stores of ``model``: ``state_dict()``, or the QLoRA state when it has quantized layers."""
    return qlora_state_dict(model) if has_quantized_layers(model) else model.state_dict()


def load_checkpoint_state(
    model: nn.Module, state: Mapping[str, Any], strict: bool = True
) -> Optional[Tuple[List[str], List[str]]]:
    """Load a QLoRA state saved by :func:`checkpoint_state`; returns ``(missing, unexpected)``.

    Returns None for a plain state dict into a float model, which
    :func:`opentad.utils.checkpoint.load_model_state` then loads itself.

    Raises:
        ValueError: a QLoRA state into a model without quantized layers or the
            reverse (merge with tools/model_converters/merge_qlora.py instead).
    """
    is_qlora = state.get("format") == QLORA_FORMAT
    if is_qlora != has_quantized_layers(model):
        raise ValueError(
            "checkpoint and model disagree on quantization: "
            + ("a QLoRA checkpoint into a float model; merge it first (tools/model_converters/merge_qlora.py)"
               if is_qlora else "a float checkpoint into a QLoRA model; use the backbone's adapter_pretrain")
        )
    return load_qlora_state_dict(model, state, strict=strict) if is_qlora else None


def state_tensors(state: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """The plain tensors a checkpoint state holds under the model's keys (a QLoRA state's ``float`` part)."""
    tensors = state["float"] if state.get("format") == QLORA_FORMAT else state
    return {k: v for k, v in tensors.items() if isinstance(v, torch.Tensor)}


def needs_pretrained_base(state: Mapping[str, Any]) -> bool:
    """True for a QLoRA state that keeps its frozen base as checksums only (rebuilt from the ``pretrain`` file)."""
    return state.get("format") == QLORA_FORMAT and bool(state.get("checksums"))


@torch.no_grad()
def merged_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The float state dict of ``model`` with every LoRA update folded in.

    Each :class:`LoRALinear` becomes ``{name}.weight`` = dequantized base +
    ``alpha/r * B @ A`` (and ``{name}.bias``; adapter projections always get
    one, zero when the QLoRA projection had none, since AdaTAD's have biases);
    each bare quantized layer becomes its dequantized weight and bias. The
    result loads into the same detector built with ``VisionTransformerAdapter``
    (see ``tools/model_converters/merge_qlora.py``).
    """
    replaced: Dict[str, torch.Tensor] = {}
    owned: List[str] = []
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            merged = module.merged_linear()
            weight, bias = merged.weight, merged.bias
            if bias is None and ".adapter." in f".{name}.":
                bias = torch.zeros(module.out_features)
        elif is_quantized(module) and not any(name.startswith(o + ".") for o in owned):
            weight, bias = dequantize_weight(module), module.bias
        else:
            continue
        replaced[f"{name}.weight"] = weight.detach().float().cpu()
        if bias is not None:
            replaced[f"{name}.bias"] = bias.detach().float().cpu()
        owned.append(name)
    kept = {k: v.detach().cpu() for k, v in model.state_dict().items() if not any(k.startswith(o + ".") for o in owned)}
    return {**kept, **replaced}
