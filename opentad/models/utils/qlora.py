"""QLoRA support around a built model: counting, adapter pretrain, checkpoints.

Checkpoints. bitsandbytes' ``Linear4bit`` cannot load its own state_dict
into a fresh layer (bitsandbytes issue #1946), so a model holding quantized
layers is saved with :func:`qlora_state_dict` and restored with
:func:`load_qlora_state_dict`:

* trainable tensors and every float tensor are saved as they are, except
  frozen backbone tensors that the model rebuilds from its ``pretrain`` file
  (the backbone wrapper loaded it); for those only a checksum is kept, and
  loading checks that the rebuilt tensor has the same checksum, so a changed
  pretrain file is an error, not a silent difference;
* each quantized layer is saved as its packed bytes and statistics
  (:func:`opentad.models.bricks.quant.export_quantized`), unless it is a
  rebuildable backbone layer (then a checksum of its packed bytes).

The result holds only tensors and plain data (``torch.load(weights_only=True)``),
and the round trip is exact.
"""
from __future__ import annotations

import logging
import re
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

import torch
from torch import nn

from opentad.models.bricks.quant import export_quantized, import_quantized, is_quantized
from opentad.utils.safe_load import torch_load

logger = logging.getLogger(__name__)

__all__ = [
    "QLORA_FORMAT",
    "logical_numel",
    "count_adapter_parameters",
    "has_quantized_layers",
    "quantized_modules",
    "load_adapter_pretrain",
    "qlora_state_dict",
    "load_qlora_state_dict",
    "merged_state_dict",
]

QLORA_FORMAT = "opentad-qlora-v1"
_ADAPTER_KEY = re.compile(r"(?:^|\.)blocks\.(\d+)\.adapter\.(.+)$")


def logical_numel(param: torch.Tensor) -> int:
    """Number of weights a parameter stands for (a packed 4-bit tensor holds two per byte)."""
    quant_state = getattr(param, "quant_state", None)
    if quant_state is not None:
        return int(torch.Size(quant_state.shape).numel())
    return param.numel()


def count_adapter_parameters(module: nn.Module, numel: Callable[[torch.Tensor], int] = logical_numel) -> Tuple[int, int]:
    """``(non-adapter, adapter)`` parameter counts; adapters are ``AdapterBase`` sub-modules."""
    from opentad.models.bricks.vit_adapter import AdapterBase

    adapter_ids = {id(p) for m in module.modules() if isinstance(m, AdapterBase) for p in m.parameters()}
    total = sum(numel(p) for p in module.parameters())
    adapters = sum(numel(p) for p in module.parameters() if id(p) in adapter_ids)
    return total - adapters, adapters


def quantized_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """``{qualified name: layer}`` of every bitsandbytes quantized layer in ``model``."""
    return {name: m for name, m in model.named_modules() if is_quantized(m)}


def has_quantized_layers(model: nn.Module) -> bool:
    return any(is_quantized(m) for m in model.modules())


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
    from opentad.models.bricks.lora import LoRALinear

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


def qlora_state_dict(model: nn.Module, *, omit_rebuildable: bool = True) -> Dict[str, object]:
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


def load_qlora_state_dict(model: nn.Module, state: Mapping[str, object], *, strict: bool = True) -> Dict[str, List[str]]:
    """Load what :func:`qlora_state_dict` saved into a model rebuilt from the same config.

    Returns:
        ``{"missing": [...], "unexpected": [...]}`` (empty lists when strict succeeds).

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
    return {"missing": missing, "unexpected": unexpected}


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
    from opentad.models.bricks.lora import LoRALinear
    from opentad.models.bricks.quant import dequantize_weight

    replaced: Dict[str, torch.Tensor] = {}
    owned: Set[str] = set()
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            merged = module.merged_linear()
            replaced[f"{name}.weight"] = merged.weight.detach().cpu()
            if merged.bias is not None:
                replaced[f"{name}.bias"] = merged.bias.detach().cpu()
            elif ".adapter." in f".{name}.":
                replaced[f"{name}.bias"] = torch.zeros(module.out_features)
            owned.add(name)
        elif is_quantized(module) and not any(name.startswith(o + ".") for o in owned):
            replaced[f"{name}.weight"] = dequantize_weight(module).cpu()
            if module.bias is not None:
                replaced[f"{name}.bias"] = module.bias.detach().float().cpu()
            owned.add(name)
    kept = {k: v.detach().cpu() for k, v in model.state_dict().items() if not any(k.startswith(o + ".") for o in owned)}
    return {**kept, **replaced}
