"""The tiny QLoRA ViT of the memory-budget and compile tests, and the compiler settings those tests give back."""
import contextlib
from typing import Iterator, Union

import pytest
import torch

from opentad.models.memory import compile as compile_module

#: width 64 and hidden width 128 (multiples of 16: fp8 products apply), 3 blocks, adapters on the last two,
#: clips of 4 frames in videos of 8
TINY_QLORA = dict(
    img_size=32, patch_size=16, embed_dims=64, depth=3, num_heads=2, mlp_ratio=2.0, num_frames=4, total_frames=8,
    adapter_index=[1, 2], return_feat_map=True, lora_r=4, lora_alpha=8, lora_dropout=0.1, quantize_backbone=True,
)


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in train mode with every trainable value moved by ``N(0, 0.1)`` (adapters and LoRA start as the
    identity: this gives each a gradient path)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return model.train()


def bf16_step(model: torch.nn.Module, policy) -> tuple:
    """One bf16-autocast step of ``model`` (``policy`` applied already) on seeded frames ``[4, 3, 4, 32, 32]``,
    its features weighted by a ramp and summed as the loss: (features as float32, {name: float32 gradient})."""
    device = next(model.parameters()).device
    frames = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    torch.manual_seed(5)  # LoRA dropout
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = policy.run_backbone(model, frames)
    (out.float() * torch.linspace(-1, 1, out.numel(), device=device).view_as(out)).sum().backward()
    return out.float().detach(), {n: p.grad.float() for n, p in model.named_parameters() if p.grad is not None}


def tiny_qlora_vit(device: Union[str, torch.device] = "cpu", **changes) -> torch.nn.Module:
    """The :data:`TINY_QLORA` ViT (with ``changes`` to its keys) from seed 0, built and quantized on ``device``,
    frozen and :func:`perturbed`."""
    pytest.importorskip("bitsandbytes")
    from opentad.models.backbones.vit_adapter_qlora import VisionTransformerQLoRA

    torch.manual_seed(0)
    with torch.device(device):
        model = VisionTransformerQLoRA(**{**TINY_QLORA, **changes})
        model.on_weights_loaded()
        model.freeze()
        return perturbed(model)


@contextlib.contextmanager
def compile_backend(name: str) -> Iterator[None]:
    """Blocks compile with backend ``name`` inside; the process-wide compiler settings that compiling changes are
    given back afterwards (set by hand: pytest's monkeypatch deletes torch's config entries on undo)."""
    inductor = torch._inductor.config
    saved = torch._dynamo.config.recompile_limit, inductor.emulate_precision_casts, inductor.fallback_random
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compile_module, "BACKEND", name)
        yield
    torch._dynamo.config.recompile_limit, inductor.emulate_precision_casts, inductor.fallback_random = saved
    torch._dynamo.reset()
