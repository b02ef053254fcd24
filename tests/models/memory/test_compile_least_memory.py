"""Compiled blocks under the least-memory settings (checkpointed blocks, the chunked backward, block inputs
offloaded): a training step of the tiny QLoRA ViT runs and computes what the eager step computes.

Run 16 (docs/benchmarks.md) saw this combination fail on an H200, ViT-g, bf16 frozen values and autocast:
``TypeError: 'NoneType' object is not callable``, its traceback lost; the same settings with fp8 products ran.
The CUDA variant here is that path at a tiny size, with the inductor backend and offloading to pinned host
memory (every saved tensor, ``min_bytes=0``); the CPU variant runs the same composition with the ``aot_eager``
backend and offloading forced (copies to CPU tensors), quickly, and checks the test itself.

Error model. float32: as ``test_compile.py``'s QLoRA model, compilation reorders float32 sums at most:
``256 * eps32 * 256 * max|value|`` for the loss and every gradient. bf16 (frozen values and autocast in bf16,
as the configs): the compiled code rounds where eager rounds (``emulate_precision_casts``), but a fused kernel
may still accumulate in another order, which can move each block's bf16 output to a neighbouring value
(2**-8 relative); so the losses agree to ``depth * 2**-8`` relative, and the gradients are checked for the
same parameters, all finite. A lost gradient path, other weights or a stale saved tensor change results at
the size of the values.
"""
import copy

import pytest
import torch

from opentad.models.memory import compile as compile_module
from opentad.models.memory.chunked_residual import ChunkedResidualFunction
from opentad.models.memory.offload import OffloadSavedTensors
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from tests.models.memory.tiny_qlora import TINY_QLORA, compile_backend, tiny_qlora_vit

pytest.importorskip("bitsandbytes")

EPS32 = torch.finfo(torch.float32).eps
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture
def backend(request):
    """The device under test, its backend set (``aot_eager`` on the CPU, ``inductor`` on CUDA)."""
    with compile_backend("inductor" if request.param == "cuda" else "aot_eager"):
        yield torch.device(request.param)


def _step(model, policy, device, autocast):
    apply_memory_policy(model, policy)
    model.zero_grad(set_to_none=True)
    frames = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    torch.manual_seed(5)  # LoRA dropout
    offload = OffloadSavedTensors(min_bytes=0, force=device.type == "cpu")
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast), offload:
        out = model(frames)
    assert offload.offloaded_tensors > 0  # the block inputs went to host memory
    weights = torch.linspace(-1, 1, out.numel(), device=device).view_as(out)
    loss = (out.float() * weights).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("backend", DEVICES, indirect=True)
@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_least_memory_compiled_step_computes_the_eager_step(backend, precision, monkeypatch):
    device, bf16 = backend, precision == "bf16"
    chunked, real = [], ChunkedResidualFunction.apply
    monkeypatch.setattr(ChunkedResidualFunction, "apply", lambda *a: chunked.append(1) or real(*a))
    settings = dict(checkpoint=True, backward_chunks=2, frozen_dtype=torch.bfloat16 if bf16 else None)
    eager = tiny_qlora_vit(device)
    compiled = copy.deepcopy(eager)
    ref_loss, ref_grads = _step(eager, MemoryPolicy(**settings), device, bf16)
    eager_chunked = len(chunked)
    torch._dynamo.reset()
    loss, grads = _step(compiled, MemoryPolicy(**settings, compile_blocks=True), device, bf16)
    assert all(compile_module.is_compiled(b) for b in compiled.blocks)
    assert eager_chunked > 0 and len(chunked) == 2 * eager_chunked  # the chunked backward ran in both
    assert set(grads) == set(ref_grads) and grads
    if bf16:
        assert abs(float(loss) - float(ref_loss)) <= TINY_QLORA["depth"] * 2**-8 * abs(float(ref_loss))
        assert all(bool(g.isfinite().all()) for g in grads.values())
        return
    n = 256
    for name, want in [("loss", ref_loss), *ref_grads.items()]:
        got = loss if name == "loss" else grads[name]
        assert float((got - want).abs().max()) <= n * EPS32 * n * max(float(want.abs().max()), 1e-6), name
