"""QLoRA-AdaTAD: AdaTAD's adapters with quantized projections plus LoRA.

Each :class:`QLoRAAdapter` is AdaTAD's temporal-informative adapter whose
down and up projections are frozen bitsandbytes layers (NF4 ``Linear4bit``
or ``Linear8bitLt``, no bias) wrapped in :class:`LoRALinear`, so that::

    h = GELU(down_proj(x))               # down_proj = Q(W_down) + B_d A_d (LoRA)
    h = h + conv(dwconv(h))              # AdaTAD's temporal mixing, unchanged
    out = x + gamma * up_proj(h)         # Q(W_up) starts at zero, B_u = 0

Only the LoRA pairs, ``gamma`` and the two temporal convolutions train.

Quantization happens once the float weights are final: the backbone wrapper
loads ``pretrain``, then calls :meth:`VisionTransformerQLoRA.on_weights_loaded`,
which loads ``adapter_pretrain`` (an AdaTAD checkpoint) into the float
adapters, then quantizes the adapter projections and, with
``quantize_backbone``, the frozen ViT's ``qkv``/``proj``/``fc1``/``fc2``
(NF4, double quantization; biases, norms, patch embedding and the position
table stay float), optionally with LoRA on ``backbone_lora_targets``.
See docs/qlora.md.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import torch
from torch import nn

from opentad.models.backbones.vit_adapter import VisionTransformerAdapter
from opentad.models.bricks.lora import LoRALinear
from opentad.models.bricks.quant import QuantSpec, quantize_linear
from opentad.models.bricks.vit_adapter import AdapterSpec, TemporalAdapter
from opentad.models.utils.qlora import count_adapter_parameters, load_adapter_pretrain, train_declared
from opentad.registry import BACKBONES

logger = logging.getLogger(__name__)

__all__ = ["QLoRAAdapter", "QLoRABlockTargets", "VisionTransformerQLoRA"]

#: names of the ViT block linears that ``quantize_backbone`` and ``backbone_lora_targets`` may name
QLoRABlockTargets = ("qkv", "proj", "fc1", "fc2")


def _bias_free_linear(name: str, in_features: int, out_features: int, bias: bool) -> nn.Module:
    return nn.Linear(in_features, out_features, bias=False)


class QLoRAAdapter(TemporalAdapter):
    """AdaTAD's TIA with frozen (later quantized) projections and LoRA beside them.

    Args:
        embed_dims: token width ``C``.
        mlp_ratio: hidden width ``int(C * mlp_ratio)``.
        temporal_size: time steps of one video.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scale numerator, input dropout.

    The projections are float ``nn.Linear`` (no bias) inside :class:`LoRALinear`
    until :meth:`quantize` swaps each base layer for its quantized copy.
    """

    def __init__(
        self,
        *,
        embed_dims: int,
        mlp_ratio: float = 0.25,
        temporal_size: int = 384,
        lora_r: int = 16,
        lora_alpha: float = 32,
        lora_dropout: float = 0.1,
    ):
        super().__init__(
            embed_dims=embed_dims,
            mlp_ratio=mlp_ratio,
            temporal_size=temporal_size,
            linear_factory=_bias_free_linear,
        )
        self.down_proj = LoRALinear(self.down_proj, r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
        self.up_proj = LoRALinear(self.up_proj, r=lora_r, alpha=lora_alpha, dropout=lora_dropout)

    def reset_projections(self) -> None:
        """Down projection ~ truncated N(0, 0.02) as AdaTAD's, up projection zero, ``gamma`` = 1."""
        with torch.no_grad():
            nn.init.trunc_normal_(self.down_proj.weight, std=0.02)
            nn.init.zeros_(self.up_proj.weight)
            self.gamma.fill_(1.0)

    def quantize(self, spec: QuantSpec) -> None:
        """Replace both projections' float base layers by quantized copies (once)."""
        for proj in (self.down_proj, self.up_proj):
            if isinstance(proj.base_layer, nn.Linear):
                proj.base_layer = quantize_linear(proj.base_layer, spec)

    def trainable_parameters(self) -> Iterator[Tuple[str, nn.Parameter]]:
        """LoRA pairs, ``gamma``, ``dwconv`` and ``conv``; never a quantized weight."""
        for name in ("down_proj", "up_proj"):
            for sub, param in getattr(self, name).trainable_parameters():
                yield f"{name}.{sub}", param
        yield "gamma", self.gamma
        for name in ("dwconv", "conv"):
            for sub, param in getattr(self, name).named_parameters():
                yield f"{name}.{sub}", param

    # the design note's names for the LoRA pairs
    @property
    def down_lora_a(self) -> nn.Linear:
        return self.down_proj.lora_a

    @property
    def down_lora_b(self) -> nn.Linear:
        return self.down_proj.lora_b

    @property
    def up_lora_a(self) -> nn.Linear:
        return self.up_proj.lora_a

    @property
    def up_lora_b(self) -> nn.Linear:
        return self.up_proj.lora_b


@BACKBONES.register_module()
class VisionTransformerQLoRA(VisionTransformerAdapter):
    """VideoMAE ViT with QLoRA adapters; every :class:`VisionTransformerAdapter` key plus:

    Args:
        lora_r: LoRA rank.
        lora_alpha: LoRA scale numerator (the update is scaled by ``alpha / r``).
        lora_dropout: dropout on the LoRA input.
        quantize_bits: 4 (NF4 ``Linear4bit``) or 8 (``Linear8bitLt``) for the adapter projections.
        quantize_adapters: quantize the adapter projections (False keeps them
            float and frozen, LoRA still trains: a benchmark/ablation mode).
        adapter_pretrain: AdaTAD checkpoint (ours or OpenTAD's) whose adapter
            projections, convolutions and gamma fill the adapters before quantizing.
        quantize_backbone: quantize the frozen ViT's block linears (NF4, double quantization).
        backbone_lora_targets: block linears (of ``qkv``, ``proj``, ``fc1``, ``fc2``) that get LoRA.
        compute_dtype: ``"bf16"``, ``"fp16"``, ``"fp32"`` or None (bf16 on CUDA, fp32 on CPU).
        **kwargs: the :class:`VisionTransformerAdapter` keys.

    Raises:
        ValueError: bad ``quantize_bits``, an unknown LoRA target, or
            ``backbone_lora_targets`` without ``quantize_backbone``.
    """

    def __init__(
        self,
        *,
        lora_r: int = 16,
        lora_alpha: float = 32,
        lora_dropout: float = 0.1,
        quantize_bits: int = 4,
        quantize_adapters: bool = True,
        adapter_pretrain: Optional[str] = None,
        quantize_backbone: bool = False,
        backbone_lora_targets: Sequence[str] = (),
        compute_dtype: Optional[str] = None,
        **kwargs: Any,
    ):
        bad = sorted(set(backbone_lora_targets) - set(QLoRABlockTargets))
        if bad:
            raise ValueError(f"backbone_lora_targets {bad} not among {list(QLoRABlockTargets)}")
        if backbone_lora_targets and not quantize_backbone:
            raise ValueError("backbone_lora_targets needs quantize_backbone=True")
        dtypes = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
        if compute_dtype not in dtypes:
            raise ValueError(f"compute_dtype={compute_dtype!r} is not one of {list(dtypes)}")
        self.adapter_spec = QuantSpec(bits=quantize_bits, compute_dtype=dtypes[compute_dtype])
        self.backbone_spec = QuantSpec(bits=4, quant_type="nf4", double_quant=True, compute_dtype=dtypes[compute_dtype])

        def adapter_factory(spec: AdapterSpec) -> QLoRAAdapter:
            return QLoRAAdapter(
                embed_dims=spec.embed_dims,
                mlp_ratio=spec.mlp_ratio,
                temporal_size=spec.temporal_size,
                lora_r=lora_r,
                lora_alpha=lora_alpha,
                lora_dropout=lora_dropout,
            )

        super().__init__(adapter_factory=adapter_factory, **kwargs)
        self.lora_cfg = dict(r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
        self.quantize_adapters = quantize_adapters
        self.adapter_pretrain = adapter_pretrain
        self.quantize_backbone = quantize_backbone
        self.backbone_lora_targets = tuple(backbone_lora_targets)
        self.prepared = False

    def on_weights_loaded(self) -> None:
        """Load ``adapter_pretrain``, then quantize (adapters, backbone) and add backbone LoRA. Once."""
        if self.prepared:
            return
        if self.adapter_pretrain is not None:
            load_adapter_pretrain(self, self.adapter_pretrain)
        for _, adapter in self.named_adapters():
            if self.quantize_adapters:
                adapter.quantize(self.adapter_spec)
        if self.quantize_backbone:
            self._quantize_blocks()
        self.prepared = True
        self.freeze()  # the new (quantized, LoRA) layers follow the same policy
        self.log_parameter_counts()

    def _quantize_blocks(self) -> None:
        for block in self.blocks:
            slots = {"qkv": (block.attn, "qkv"), "proj": (block.attn, "proj"),
                     "fc1": (block.mlp.layers[0], "0"), "fc2": (block.mlp.layers, "1")}
            for name, (owner, attr) in slots.items():
                layer = quantize_linear(getattr(owner, attr), self.backbone_spec)
                if name in self.backbone_lora_targets:
                    layer = LoRALinear(layer, **self.lora_cfg)
                setattr(owner, attr, layer)

    def freeze(self) -> None:
        """Freeze everything, then let what each adapter and each backbone LoRA declares train."""
        super().freeze()
        train_declared(self)

    def log_parameter_counts(self) -> Dict[str, int]:
        """Log ViT and adapter counts, quantized weights at their logical (unpacked) size."""
        vit, adapters = count_adapter_parameters(self)
        share = 100.0 * adapters / vit if vit else 0.0
        logger.info(
            "%s: ViT parameters: %s, QLoRA adapter parameters: %s (%.1f%% of the ViT)",
            type(self).__name__, f"{vit:,}", f"{adapters:,}", share,
        )
        return {"vit": vit, "adapter": adapters}
