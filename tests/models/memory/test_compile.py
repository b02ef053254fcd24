"""``compile_blocks``: torch.compile of each block keeps the seeded loss and gradients under every way the
policy runs a block (checkpointed, chunked backward, and plain under no_grad for the graph-free first block),
keeps the state-dict keys, and refuses bad values.

Compiled with the ``aot_eager`` backend (Dynamo's graphs run by the same ATen kernels, no C++ toolchain); the
inductor backend is not run here (its C++ compilation takes minutes on a shared CPU): the GPU benchmark runs it.

Error model, as in ``test_policy.py`` (float64) and ``test_budget.py`` (float32): compilation changes which
Python code dispatches the kernels, not the values they multiply; at most the order of a sum changes, so results
differ from the eager run by at most ``n * eps * sum|terms|`` with ``n`` the longest reduction and ``sum|terms|``
bounded by ``n`` times the largest value compared (``n`` = 10**3 for the float64 model, 256 for the float32
QLoRA one). A wrong compiled path (a lost gradient, other drop-path rows, a stale weight) changes results at the
size of the values.
"""
import copy
import logging
import pickle

import pytest
import torch

from opentad.models.backbones.backbone_wrapper import WrapperOptions
from opentad.models.backbones.vit_adapter import VisionTransformerAdapter
from opentad.models.bricks.vit import FFN, Block
from opentad.models.memory import compile as compile_module
from opentad.models.memory.chunked_residual import ChunkedResidualFunction
from opentad.models.memory.frozen_mlp import FrozenMLP
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from opentad.registry import ConfigError
from tests.models.memory.tiny_qlora import TINY_QLORA, compile_backend, perturbed, tiny_qlora_vit

EPS64, EPS32 = torch.finfo(torch.float64).eps, torch.finfo(torch.float32).eps
TINY = dict(img_size=32, patch_size=16, embed_dims=16, depth=3, num_heads=2, num_frames=4, return_feat_map=True)
OPTIONS = {"checkpoint": dict(checkpoint=True), "chunked backward 2": dict(checkpoint=True, backward_chunks=2)}


@pytest.fixture(scope="module", autouse=True)
def aot_eager():
    """The aot_eager backend for this module, the compiler settings given back afterwards."""
    with compile_backend("aot_eager"):
        yield


@pytest.fixture(scope="module")
def adapter_pair():
    """(eager, compiled) copies of one tiny float64 ViT-adapter with stochastic depth."""
    torch.manual_seed(0)
    model = VisionTransformerAdapter(**TINY, total_frames=8, adapter_index=[1, 2], drop_path_rate=0.3).double()
    model = perturbed(model)
    return model, copy.deepcopy(model)


@pytest.fixture(scope="module")
def qlora_pair():
    model = tiny_qlora_vit()
    return model, copy.deepcopy(model)


def _step(model, policy, dtype, apply=True):
    if apply:
        apply_memory_policy(model, policy)
    model.zero_grad(set_to_none=True)
    frames = torch.randn(4, 3, 4, 32, 32, dtype=dtype, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)  # stochastic depth, LoRA dropout
    out = policy.run_backbone(model, frames)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _compare(pair, option, dtype, n, monkeypatch, setting=True):
    eager, compiled = pair
    chunked = []
    real = ChunkedResidualFunction.apply
    monkeypatch.setattr(ChunkedResidualFunction, "apply", lambda *a: chunked.append(1) or real(*a))
    ref_loss, ref_grads = _step(eager, MemoryPolicy(**OPTIONS[option]), dtype)
    eager_chunked = len(chunked)
    torch._dynamo.reset()  # compiled now, whatever ran before
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    loss, grads = _step(compiled, MemoryPolicy(**OPTIONS[option], compile_blocks=setting), dtype)
    assert all(compile_module.is_compiled(b) and "forward" in vars(b) for b in compiled.blocks)
    assert len(chunked) == 2 * eager_chunked and (eager_chunked > 0) == ("chunked" in option)  # same path ran
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs
    eps = EPS64 if dtype == torch.float64 else EPS32
    assert set(grads) == set(ref_grads) and grads
    for name, want in [("loss", ref_loss), *ref_grads.items()]:
        got = loss if name == "loss" else grads[name]
        tol = n * eps * n * max(float(want.abs().max()), 1e-6)
        assert float((got - want).abs().max()) <= tol, name


@pytest.mark.parametrize("option", ["checkpoint", "chunked backward 2"])  # stochastic depth drawn ahead: both paths
def test_compiled_adapter_vit_keeps_the_seeded_loss_and_gradients(adapter_pair, option, monkeypatch):
    _compare(adapter_pair, option, torch.float64, 10**3, monkeypatch)


def test_multi_kernel_mode_on_another_backend_is_the_default_mode(adapter_pair, monkeypatch):
    """``"multi-kernel"`` is the default mode plus Inductor options; other backends (aot_eager here) take none,
    and compile the default mode under the setting's own key (its Inductor path: the next test and the GPU)."""
    _compare(adapter_pair, "checkpoint", torch.float64, 10**3, monkeypatch, setting="multi-kernel")
    assert all(b._compile_key == ("multi-kernel", "aot_eager") for b in adapter_pair[1].blocks)


@pytest.mark.parametrize("mode, want", [
    ("multi-kernel", dict(backend="inductor", options={"triton.multi_kernel": 1})),
    ("max-autotune-no-cudagraphs", dict(backend="inductor", mode="max-autotune-no-cudagraphs")),
    (None, dict(backend="inductor", mode=None)),
])
def test_each_mode_reaches_torch_compile_as_a_mode_or_as_inductor_options(mode, want, monkeypatch, caplog):
    """What ``torch.compile`` receives per mode; the multi-kernel mode also turns off the file of multi-kernel
    picks (torch 2.11 fails reading it), once, logged; a variable the user set is left alone."""
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: calls.append(kwargs) or fn)
    monkeypatch.setenv(compile_module._MULTI_KERNEL_CACHE, "unset")  # recorded, so that undo removes what is set
    monkeypatch.delenv(compile_module._MULTI_KERNEL_CACHE)
    with caplog.at_level(logging.INFO, logger=compile_module.__name__):
        compile_module._compile(lambda x: x, mode, "inductor")
        compile_module._compile(lambda x: x, mode, "inductor")
    assert calls == [want, want]
    lines = [r.getMessage() for r in caplog.records if "MULTI_KERNEL" in r.getMessage()]
    if mode == "multi-kernel":
        assert compile_module.os.environ[compile_module._MULTI_KERNEL_CACHE] == "1" and len(lines) == 1
        monkeypatch.setenv(compile_module._MULTI_KERNEL_CACHE, "0")
        compile_module._compile(lambda x: x, mode, "inductor")
        assert compile_module.os.environ[compile_module._MULTI_KERNEL_CACHE] == "0"
    else:
        assert compile_module._MULTI_KERNEL_CACHE not in compile_module.os.environ and not lines
    compile_module._compile(lambda x: x, mode, "aot_eager")
    assert calls[-1] == dict(backend="aot_eager", options=None) if mode == "multi-kernel" else \
        calls[-1] == dict(backend="aot_eager", mode=mode)


@pytest.mark.parametrize("option", ["checkpoint", "chunked backward 2"])
def test_compiled_qlora_vit_keeps_the_seeded_loss_and_gradients(qlora_pair, option, monkeypatch):
    breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
    _compare(qlora_pair, option, torch.float32, 256, monkeypatch)
    if option == "checkpoint":  # the first compilation: each unheld 4-bit layer breaks the graph
        assert sum(torch._dynamo.utils.counters["graph_break"].values()) > breaks


def test_state_dict_keys_unchanged_and_eager_again(adapter_pair, caplog):
    _, model = adapter_pair
    keys = list(model.state_dict())
    with caplog.at_level(logging.INFO, logger=compile_module.__name__):
        apply_memory_policy(model, MemoryPolicy(compile_blocks="max-autotune-no-cudagraphs"))
        apply_memory_policy(model, MemoryPolicy(compile_blocks="max-autotune-no-cudagraphs"))  # no change
    assert list(model.state_dict()) == keys
    assert all(type(b.mlp) is FFN for b in model.blocks)  # compiled: autograd's MLP, which the compiler fuses
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("compile_blocks=")] == [
        "compile_blocks='max-autotune-no-cudagraphs': 3 blocks compiled (blocks.0 .. blocks.2; backend aot_eager)"]
    apply_memory_policy(model, MemoryPolicy())
    assert not any(compile_module.is_compiled(b) or {"forward", "residual"} & set(vars(b)) for b in model.blocks)
    assert not any(b.adapter is not None and {"forward", "_compile_key"} & set(vars(b.adapter)) for b in model.blocks)
    assert list(model.state_dict()) == keys and all(type(b) is Block for b in model.blocks)
    assert all(type(b.mlp) is FrozenMLP for b in model.blocks)  # eager again: the chunked MLP again


@pytest.fixture
def dynamo_only(monkeypatch):
    """Dynamo's ``eager`` backend (its graphs run as traced, no AOT tracing): for what Dynamo alone decides (graph
    breaks, which module a compiled method binds, hooks); the quickest to compile."""
    monkeypatch.setattr(compile_module, "BACKEND", "eager")


def test_held_qlora_blocks_compile_without_graph_breaks(dynamo_only):
    """With dequantized copies held, a 4-bit block is plain ``F.linear`` to Dynamo: a checkpointed training step
    of the compiled QLoRA ViT breaks no graph (unheld, each 4-bit layer breaks one: the QLoRA tests above)."""
    pytest.importorskip("bitsandbytes")
    from opentad.models.backbones.vit_adapter_qlora import VisionTransformerQLoRA
    from opentad.models.memory.dequant_cache import hold_dequantized

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    torch.manual_seed(0)
    model = VisionTransformerQLoRA(**TINY_QLORA)
    model.on_weights_loaded()
    model.freeze()
    for block in model.blocks:
        hold_dequantized(block, True, None)
    _step(model.train(), MemoryPolicy(checkpoint=True, compile_blocks=True), torch.float32)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
    assert sum(torch._dynamo.utils.counters["graph_break"].values()) == 0


def test_a_deep_copy_of_a_compiled_model_computes_with_its_own_weights(dynamo_only):
    """The EMA deep-copies the built, compiled model. The copy's blocks, their residuals (the chunked backward's
    row groups) and adapters compute with the copy's weights: its loss and gradients after all its weights change
    are an eager model's with those weights (a compiled method bound to the original block computes with the
    original's weights: an error at the size of the change)."""
    def build():
        return VisionTransformerAdapter(**TINY, total_frames=8, adapter_index=[1, 2], drop_path_rate=0.3).double()

    torch.manual_seed(0)
    model = perturbed(build())
    policy = MemoryPolicy(**OPTIONS["chunked backward 2"], compile_blocks=True)
    apply_memory_policy(model, policy)
    twin = copy.deepcopy(model)
    with torch.no_grad():  # frozen weights too: the chunked backward's residual must use the twin's
        for p in twin.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    assert all(compile_module.is_compiled(b) for b in twin.blocks)
    assert all("forward" in vars(b.adapter) for b in twin.blocks if b.adapter is not None)  # adapters stay compiled
    reference = build()  # built apart: nothing compiled is shared with the twin
    reference.load_state_dict(twin.state_dict())
    ref_loss, ref_grads = _step(reference.train(), MemoryPolicy(**OPTIONS["chunked backward 2"]), torch.float64)
    loss, grads = _step(twin, policy, torch.float64, apply=False)  # as the EMA's copy runs: never applied again
    apply_memory_policy(twin, MemoryPolicy())
    assert not any(compile_module.is_compiled(b) for b in twin.blocks)  # a copy un-compiles too
    n = 10**3  # error model of _compare (float64)
    assert set(grads) == set(ref_grads) and grads
    for name, want in [("loss", ref_loss), *ref_grads.items()]:
        got = loss if name == "loss" else grads[name]
        assert float((got - want).abs().max()) <= n * EPS64 * n * max(float(want.abs().max()), 1e-6), name


def test_adapter_hooks_run_and_a_pickled_compiled_model_loads(adapter_pair, dynamo_only):
    """A forward hook on a compiled block's adapter runs once per forward, as in eager mode (the adapter then runs
    as a module call after the compiled residual); a pickled compiled model loads in a fresh compiler state and
    computes what the original does. Forward in training mode under no_grad (stochastic depth drawn)."""
    _, model = adapter_pair
    apply_memory_policy(model, MemoryPolicy(compile_blocks=True))
    frames = torch.randn(4, 3, 4, 32, 32, dtype=torch.float64)

    def forward(m):
        torch.manual_seed(7)
        with torch.no_grad():
            return torch.cat([o.flatten() for o in m(frames)])

    want = forward(model)
    calls = []
    handle = model.blocks[1].adapter.register_forward_hook(lambda *_: calls.append(1))
    try:
        got = forward(model)
    finally:
        handle.remove()
    assert len(calls) == 1 and torch.equal(got, want)  # the same kernels, in the same order
    clone = pickle.loads(pickle.dumps(model))
    compile_module._COMPILED.clear()  # as in a new process
    torch._dynamo.reset()
    assert all(compile_module.is_compiled(b) for b in clone.blocks) and torch.equal(forward(clone), want)


def test_compiling_configures_the_compiler_never_undoes_it(adapter_pair):
    """Dynamo stops compiling a function after its limit and runs it eager from then on: compiling blocks raises
    the limit to RECOMPILE_LIMIT, and leaves a higher one alone; Inductor rounds low-precision intermediates and
    draws random numbers as eager does. Un-compiling changes none of them. (Values set and restored by hand:
    pytest's monkeypatch deletes torch's config entries on undo.)"""
    _, model = adapter_pair
    dynamo, inductor = torch._dynamo.config, torch._inductor.config
    flags = ("emulate_precision_casts", "fallback_random")
    saved = dynamo.recompile_limit, [getattr(inductor, f) for f in flags]
    try:
        for before, after in ((8, compile_module.RECOMPILE_LIMIT), (1000, 1000)):
            dynamo.recompile_limit = before
            for flag in flags:
                setattr(inductor, flag, False)
            apply_memory_policy(model, MemoryPolicy())
            assert not any(getattr(inductor, f) for f in flags)
            apply_memory_policy(model, MemoryPolicy(compile_blocks=True))
            assert dynamo.recompile_limit == after and all(getattr(inductor, f) is True for f in flags)
        dynamo.recompile_limit = 8
        apply_memory_policy(model, MemoryPolicy())
        assert dynamo.recompile_limit == 8 and all(getattr(inductor, f) is True for f in flags)
    finally:
        dynamo.recompile_limit = saved[0]
        for flag, value in zip(flags, saved[1]):
            setattr(inductor, flag, value)


def _graphs_of_a_step(depth, option, attn_drop_rate=0.0):
    """Graphs Dynamo compiles for one forward in training mode of a fresh compiled ViT-adapter of ``depth`` blocks whose
    stochastic-depth probability grows with depth (0 at block 0, as the configs' ``drop_path_rate`` does)."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    torch.manual_seed(0)
    model = VisionTransformerAdapter(**dict(TINY, depth=depth), total_frames=8, adapter_index=list(range(depth)),
                                     drop_path_rate=0.3, attn_drop_rate=attn_drop_rate).train()
    assert len({b.drop_path.drop_prob for b in model.blocks}) == depth
    policy = MemoryPolicy(**OPTIONS[option], compile_blocks=True)
    apply_memory_policy(model, policy)
    with torch.no_grad():  # training mode draws the factors; forward graphs suffice (quicker to compile)
        policy.run_backbone(model, torch.randn(8, 3, 4, 32, 32))
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_every_block_shares_the_graphs_whatever_its_drop_probability(dynamo_only):
    """The drop probability differs per block; drawn outside the compiled code, it is not a constant of the graph:
    three blocks compile no more graphs than two (drawn inside, each block's probability is a new graph: a
    residual with its own dropout keeps its draws inside, the control)."""
    try:
        assert _graphs_of_a_step(3, "checkpoint") == _graphs_of_a_step(2, "checkpoint") > 0
        assert _graphs_of_a_step(3, "checkpoint", 0.1) > _graphs_of_a_step(2, "checkpoint", 0.1)
    finally:
        torch._dynamo.reset()


def test_a_new_row_count_compiles_no_new_graph(dynamo_only):
    """Blocks see other row counts (the planner's profile slices, row groups, a short last batch): the policy marks
    the rows dynamic from the first call on, so later row counts reuse the first graphs (unmarked, Dynamo compiles
    again at the second count, then makes the dim dynamic itself). The chunked
    backward runs every marked call: the whole block (the graph-free first one), its residual on row groups, and
    its adapter."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()  # reset() keeps the counters of earlier tests
    try:
        torch.manual_seed(0)
        model = VisionTransformerAdapter(**TINY, total_frames=8, adapter_index=[1, 2]).train()
        policy = MemoryPolicy(**OPTIONS["chunked backward 2"], compile_blocks=True)
        apply_memory_policy(model, policy)
        assert all(compile_module.is_compiled(b) for b in model.blocks)
        counts = []
        for rows in (8, 16, 12):  # whole videos of 2 clips: 4, 8, 6 videos (fewer flip a size test in conv1d)
            frames = torch.randn(rows, 3, 4, 32, 32)
            policy.run_backbone(model, frames).sum().backward()
            counts.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
        assert counts[0] == counts[1] == counts[2] > 0, counts
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("bad", ["fast", "", 1, 0, None, "Default", "reduce-overhead", "max-autotune"])
def test_bad_values_are_refused(bad):
    why = "captures CUDA graphs" if bad in compile_module.CUDA_GRAPH_MODES else "valid values: False, True, 'default'"
    with pytest.raises(ValueError, match=rf"compile_blocks=.*{why}"):
        MemoryPolicy(compile_blocks=bad)
    with pytest.raises(ConfigError, match="compile_blocks"):
        WrapperOptions.from_mapping(dict(compile_blocks=bad))
