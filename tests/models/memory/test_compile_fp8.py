"""``frozen_fp8`` in compiled blocks: the fp8 products trace into the block's graph (no graph break, no eager
call) wherever their tensors exist before the step ("all": the fp8 weights and their transposes; "forward": the
fp8 weights and a held bf16 copy for the backward), and fall back to the eager product, one graph break per
layer, elsewhere; models compiled one after another each compute their own products.

Dynamo's ``eager`` backend runs the traced graphs with the same ATen kernels the eager model calls, in the same
order, so a compiled run computes what the eager run of the same mode computes. Error model: the fp8 products'
error against the bf16 ones is the size of an e4m3 rounding (``2^-4`` relative per value, a few percent of a
product); two runs of the same fp8 arithmetic differ only where a reordered float32 sum moves a value across
an e4m3 rounding boundary, which happens to about ``2^-24 / 2^-4`` of the values. The compiled fp8 result must
therefore be within a tenth of the fp8-vs-bf16 difference of the eager fp8 result; a compiled block that
multiplied in bf16 instead (the plain product) would be at the whole of it.
"""
import copy

import pytest
import torch

from opentad.models.memory import fp8_matmul as F8
from opentad.models.memory.dequant_cache import hold_dequantized
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from tests.models.memory.tiny_qlora import bf16_step, compile_backend, tiny_qlora_vit

BF16 = torch.bfloat16
#: the 16 frozen 4-bit layers (4 per block, 2 per adapter) once in forward, and the 12 of blocks 1 and 2 once
#: more in their recomputation (block 0's input needs no gradient: it is not recomputed)
CALLS = 16 + 12


@pytest.fixture(scope="module", autouse=True)
def dynamo_only():
    """Dynamo's ``eager`` backend: graph breaks as Dynamo decides them, the graphs run by eager kernels."""
    with compile_backend("eager"):
        yield


@pytest.fixture(scope="module")
def model():
    return tiny_qlora_vit()


def _run(model, fp8, hold: bool, compiled: bool, monkeypatch, chunks: int = 1):
    """One checkpointed bf16 step of a copy of ``model`` (its backward in ``chunks`` row groups): (features,
    adapter gradients, eager fp8 calls, graph breaks)."""
    model = copy.deepcopy(model)
    calls = []
    real = F8._FP8FrozenMatmul.apply
    monkeypatch.setattr(F8._FP8FrozenMatmul, "apply", lambda *a: calls.append(a[3]) or real(*a))
    policy = MemoryPolicy(frozen_dtype=BF16, compile_blocks=compiled, frozen_fp8=fp8, checkpoint=True,
                          backward_chunks=chunks)
    apply_memory_policy(model, policy)
    if hold:
        hold_dequantized(model, True, BF16)
    breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
    out, grads = bf16_step(model, policy)
    monkeypatch.undo()
    return out.float().detach(), grads, calls, sum(torch._dynamo.utils.counters["graph_break"].values()) - breaks


def _distance(a, b) -> float:
    return float((a - b).norm())


def _check_own(got, fp8_ref, bf16_ref) -> None:
    """``got`` (features, gradients) is the fp8 arithmetic of ``fp8_ref`` within the module's error model; a value
    that no fp8 product reaches (the last adapter's biases: their gradient is the incoming one) within a bf16
    rounding of it."""
    changed = 0
    for name in ["features", *fp8_ref[1]]:
        g, f, b = ((x[0] if name == "features" else x[1][name]) for x in (got, fp8_ref, bf16_ref))
        changed += _distance(f, b) > 0
        tol = 0.1 * _distance(f, b) if _distance(f, b) > 0 else 2.0**-8 * float(f.norm())
        assert _distance(g, f) <= tol, (name, _distance(g, f), _distance(f, b))
    assert changed >= len(fp8_ref[1]) // 2, changed  # fp8 changed most values: the comparisons could fail


@pytest.mark.parametrize("fp8, hold, chunks", [("all", False, 1), ("forward", True, 1), ("all", False, 2)])
def test_fp8_products_trace_into_the_compiled_block(model, fp8, hold, chunks, monkeypatch):
    """Checkpointed, and with the chunked backward (whose compiled recomputation leaves out ``fc2``'s product,
    its fp8 backward product taken from the transposed fp8 weight: as the eager ``FrozenMLP`` computes it)."""
    torch._dynamo.reset()
    bf16_ref = _run(model, False, hold, False, monkeypatch, chunks)
    fp8_ref = _run(model, fp8, hold, False, monkeypatch, chunks)
    assert set(fp8_ref[2]) == {fp8 == "all"} and fp8_ref[3] == 0  # eagerly: the products through the eager Function
    got = _run(model, fp8, hold, True, monkeypatch, chunks)
    assert got[2] == [] and got[3] == 0, (got[2], got[3])  # compiled: traced, not one eager call or graph break
    assert set(got[1]) == set(fp8_ref[1]) and got[1]
    _check_own(got, fp8_ref, bf16_ref)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9),
                    reason="fp8 products on CUDA need compute capability 8.9 or more")
@pytest.mark.parametrize("chunks", [1, 2])
def test_on_cuda_inductor_compiles_the_fp8_products_into_the_block(chunks, monkeypatch):
    """The benchmark's path at a tiny size: Inductor on CUDA (cuBLASLt's fp8 products, the quantization fused by
    Inductor) against the eager CUDA run (the Triton quantizer), with fp8 "all", checkpointed and chunked."""
    cuda_model = tiny_qlora_vit("cuda")
    with compile_backend("inductor"):
        torch._dynamo.reset()
        bf16_ref = _run(cuda_model, False, False, False, monkeypatch, chunks)
        fp8_ref = _run(cuda_model, "all", False, False, monkeypatch, chunks)
        got = _run(cuda_model, "all", False, True, monkeypatch, chunks)
    assert got[2] == [] and got[3] == 0, (got[2], got[3])
    _check_own(got, fp8_ref, bf16_ref)


def test_without_their_tensors_the_eager_product_runs_at_a_graph_break(model, monkeypatch):
    """"forward" without a held bf16 copy: the backward product needs the packed weight, which Dynamo cannot
    trace; each fp8 layer runs eagerly (as before fp8 products traced)."""
    torch._dynamo.reset()
    got = _run(model, "forward", False, True, monkeypatch)
    assert len(got[2]) == CALLS and set(got[2]) == {False} and got[3] > 0
    _check_own(got, _run(model, "forward", False, False, monkeypatch), _run(model, False, False, False, monkeypatch))


def test_models_compiled_one_after_another_each_compute_their_own(model, monkeypatch):
    """Every model of a process shares the compiled bodies, and Dynamo's cached code for a 4-bit layer checks the
    layer's type, not its plain attributes. Models compiled one after another with ``frozen_fp8`` "all", off and
    "forward" (as the benchmark's rows run) each compute their own products. Before the hooked layers had a class
    of their own, the model without fp8 products ran the first model's decision and raised "'NoneType' object is
    not callable" (H100 benchmark, 2026-12-07)."""
    torch._dynamo.reset()
    refs = {fp8: _run(model, fp8, False, False, monkeypatch) for fp8 in (False, "all", "forward")}
    for fp8 in ("all", False, "forward"):
        got = _run(model, fp8, False, True, monkeypatch)
        assert len(got[2]) == (CALLS if fp8 == "forward" else 0), (fp8, len(got[2]))
        if fp8:
            _check_own(got, refs[fp8], refs[False])
        else:
            for name in ["features", *refs[False][1]]:  # the plain product: far closer than any fp8 rounding
                g, f, b = ((x[0] if name == "features" else x[1][name]) for x in (got, refs[False], refs["all"]))
                assert _distance(g, f) <= 0.1 * _distance(b, f), name
    torch._dynamo.reset()


def test_a_weight_changed_in_place_is_multiplied_fresh_by_a_compiled_block(model):
    """Compiled blocks read the fp8 copies as they are; the policy remakes a changed weight's copy before the blocks
    run, also when the backbone is called directly (not through ``run_backbone``): after an in-place copy into a
    weight (as ``load_state_dict`` makes) the compiled output moves as the eager one does."""
    torch._dynamo.reset()
    frames = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    outs = {}
    for compiled in (False, True):
        twin = copy.deepcopy(model).eval()
        policy = MemoryPolicy(frozen_dtype=BF16, compile_blocks=compiled, frozen_fp8="all")
        apply_memory_policy(twin, policy)
        with torch.no_grad(), torch.autocast("cpu", dtype=BF16):
            before = policy.run_backbone(twin, frames).float()
            fc2 = twin.blocks[1].mlp.layers[1]
            fc2.weight.copy_(fc2.weight.flip(0))
            outs[compiled] = (before, twin(frames).float())
    moved = _distance(outs[False][1], outs[False][0])
    assert moved > 0
    # the same arithmetic on the same new weight: within the error model's tenth of what the change moved
    assert _distance(outs[True][1], outs[False][1]) <= 0.1 * moved
    torch._dynamo.reset()
