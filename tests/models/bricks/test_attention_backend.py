"""Which SDPA backend runs: on CPU against torch's own dispatcher (``torch._fused_sdp_choice``), on CUDA the
dispatcher's answer first and the priority logic (torch's query functions replaced) where there is none, and
the ViT's log line; on a GPU, that the first answer of a process names the kernel that then runs."""
import logging
import types

import pytest
import torch

from opentad.models.backbones.vit import VisionTransformerCP
from opentad.models.bricks import attention_backend as ab
from opentad.models.bricks.attention_backend import sdpa_backend

#: torch's SDPBackend values as our names (CPU: its flash kernel is "cpu-flash")
CPU_NAMES = {0: "math", 1: "cpu-flash"}
CUDA_NAMES = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn"}

CPU_CASES = {
    "float32": (torch.zeros(2, 2, 5, 8), 0.0, "cpu-flash"),
    "float64": (torch.zeros(2, 2, 5, 8, dtype=torch.float64), 0.0, "cpu-flash"),
    "bf16": (torch.zeros(2, 2, 5, 8, dtype=torch.bfloat16), 0.0, "cpu-flash"),
    "fp16": (torch.zeros(2, 2, 5, 8, dtype=torch.float16), 0.0, "cpu-flash"),
    "dropout": (torch.zeros(2, 2, 5, 8), 0.1, "math"),
    "head dim not contiguous": (torch.zeros(2, 2, 8, 5).transpose(-1, -2), 0.0, "math"),
}


@pytest.mark.parametrize("case", sorted(CPU_CASES))
def test_cpu_answer_matches_torch_and_the_hand_worked_rule(case, monkeypatch):
    """4-D inputs (the ViT's): torch's dispatcher, this module and its written-out rule (torch's choice hidden)
    agree with the hand-worked answer."""
    q, dropout, want = CPU_CASES[case]
    assert sdpa_backend(q, q, q, dropout_p=dropout) == want
    assert CPU_NAMES[int(torch._fused_sdp_choice(q, q, q, dropout_p=dropout))] == want
    monkeypatch.delattr(torch, "_fused_sdp_choice")
    assert sdpa_backend(q, q, q, dropout_p=dropout) == want


def test_cpu_3d_inputs_follow_the_installed_torch(monkeypatch):
    """Whether the CPU flash kernel takes 3-D inputs changed between torch releases (2.11: math; 2.14: flash):
    the answer is the installed torch's own; without torch's dispatcher the written-out rule says math."""
    q = torch.zeros(2, 5, 8)
    assert sdpa_backend(q, q, q) in ("math", "cpu-flash")
    monkeypatch.delattr(torch, "_fused_sdp_choice")
    assert sdpa_backend(q, q, q) == "math"


def test_cpu_no_usable_backend_is_none(monkeypatch):
    """torch's dispatcher raising (no backend it may use) is "none", not a guess from the rule."""
    def refuse(*args, **kwargs):
        raise RuntimeError("No viable backend for scaled_dot_product_attention was found.")

    monkeypatch.setattr(torch, "_fused_sdp_choice", refuse)
    q = torch.zeros(1, 2, 4, 8)
    assert sdpa_backend(q, q, q) == "none"


def test_cpu_flash_disabled_falls_back_to_math():
    q = torch.zeros(1, 2, 4, 8)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]):
        assert sdpa_backend(q, q, q) == "math"
        assert CPU_NAMES[int(torch._fused_sdp_choice(q, q, q))] == "math"
    assert sdpa_backend(q, q, q) == "cpu-flash"


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.backends.cuda's flags and constraint checks as a dict the test sets; returns (state, q)."""
    state = dict(enabled={"flash": True, "efficient": True, "math": True, "cudnn": True},
                 usable={"flash": True, "efficient": True, "cudnn": True}, order=[1, 2, 0, 3, 4], params=[])
    cuda = torch.backends.cuda
    monkeypatch.setattr(cuda, "SDPAParams", lambda *args: state["params"].append(args) or args)
    for name, flag in [("flash", "flash_sdp_enabled"), ("efficient", "mem_efficient_sdp_enabled"),
                       ("math", "math_sdp_enabled"), ("cudnn", "cudnn_sdp_enabled")]:
        monkeypatch.setattr(cuda, flag, lambda name=name: state["enabled"][name])
    for name, check in [("flash", "can_use_flash_attention"), ("efficient", "can_use_efficient_attention"),
                        ("cudnn", "can_use_cudnn_attention")]:
        monkeypatch.setattr(cuda, check, lambda params, debug=False, name=name: state["usable"][name])
    monkeypatch.setattr(torch._C, "_get_sdp_priority_order", lambda: state["order"])
    monkeypatch.delattr(torch, "_fused_sdp_choice")  # a torch without the dispatcher query: the rule answers
    q = types.SimpleNamespace(device=torch.device("cuda"))
    return state, q


@pytest.mark.parametrize("answer, want", [(3, "cudnn"), (1, "flash"), (2, "efficient"), (0, "math"), (4, "unknown"),
                                          (RuntimeError("No viable backend"), "none")])
def test_cuda_dispatcher_answer_wins_over_the_order(fake_cuda, monkeypatch, answer, want):
    """torch 2.9+ puts cuDNN first on sm90/sm100 inside its dispatcher's first call, while the priority query
    still says flash first: the dispatcher's answer is the one given."""
    state, q = fake_cuda
    asked = []

    def choose(*args, **kwargs):
        asked.append(kwargs)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(torch, "_fused_sdp_choice", choose, raising=False)
    assert sdpa_backend(q, q, q, dropout_p=0.5) == want
    assert asked == [dict(dropout_p=0.5)] and state["params"] == []  # the rule was not asked


def test_cuda_dispatcher_refusing_the_arguments_leaves_the_rule(fake_cuda, monkeypatch):
    state, q = fake_cuda
    asked = []

    def other_signature(*args, **kwargs):
        asked.append(kwargs)
        raise TypeError("incompatible function arguments")

    monkeypatch.setattr(torch, "_fused_sdp_choice", other_signature, raising=False)
    state["enabled"]["flash"] = False
    assert sdpa_backend(q, q, q) == "efficient"
    assert asked == [dict(dropout_p=0.0)] and len(state["params"]) == 1  # asked first, then the rule


def test_cuda_first_enabled_and_usable_backend_in_priority_order(fake_cuda):
    state, q = fake_cuda
    assert sdpa_backend(q, q, q, dropout_p=0.25) == "flash"
    assert state["params"][-1] == (q, q, q, None, 0.25, False, False)  # no mask, not causal, no GQA
    state["enabled"]["flash"] = False  # disabled -> the next in order
    assert sdpa_backend(q, q, q) == "efficient"
    state["enabled"]["flash"], state["usable"]["efficient"] = True, False
    assert sdpa_backend(q, q, q) == "flash"
    state["usable"]["flash"] = False  # neither fused kernel fits -> math, before cuDNN in torch's default order
    assert sdpa_backend(q, q, q) == "math"
    state["enabled"]["math"] = False
    assert sdpa_backend(q, q, q) == "cudnn"
    state["usable"]["cudnn"] = False
    assert sdpa_backend(q, q, q) == "none"
    state["usable"].update(flash=True, cudnn=True)
    state["enabled"]["math"] = True
    state["order"] = [3, 1, 2, 0, 4]  # a user priority (sdpa_kernel(..., set_priority=True))
    assert sdpa_backend(q, q, q) == "cudnn"


def test_cuda_without_priority_query_or_gqa_argument(fake_cuda, monkeypatch):
    state, q = fake_cuda
    monkeypatch.delattr(torch._C, "_get_sdp_priority_order")
    old = []

    def six_args(*args):  # torch < 2.5's SDPAParams
        if len(args) != 6:
            raise TypeError("incompatible function arguments")
        old.append(args)
        return args

    monkeypatch.setattr(torch.backends.cuda, "SDPAParams", six_args)
    state["enabled"]["flash"] = False
    assert sdpa_backend(q, q, q) == "efficient" and old == [(q, q, q, None, 0.0, False)]


def test_other_devices_are_unknown():
    q = torch.zeros(1, 1, 2, 4, device="meta")
    assert sdpa_backend(q, q, q) == "unknown"


def test_vit_logs_the_backend_once_per_line(caplog, monkeypatch):
    monkeypatch.setattr(ab, "_LOGGED", set())
    tiny = dict(img_size=32, patch_size=16, embed_dims=16, depth=1, num_heads=2, num_frames=4, return_feat_map=True)
    model = VisionTransformerCP(**tiny).eval()
    frames = torch.zeros(3, 3, 4, 32, 32)
    with caplog.at_level(logging.INFO, logger=ab.__name__):
        model(frames)
        model(frames)
        dropout = VisionTransformerCP(**tiny, attn_drop_rate=0.1).train()
        dropout(frames)
    lines = [r.getMessage() for r in caplog.records if r.name == ab.__name__]
    # 2 time tokens (4 frames / tubelet 2) x 2 x 2 patches of 16 px in 32 px = 8 tokens; 16 / 2 heads = 8 dims
    assert lines == ["attention: cpu-flash (heads 2, head dim 8, float32, 8 tokens)",
                     "attention: math (heads 2, head dim 8, float32, 8 tokens)"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [64, 88, 96, 128, 256])
def test_cuda_answer_matches_torch(dtype, head_dim):
    """The answer, and the written-out rule once torch's order is set up by a first call, are the dispatcher's."""
    q = torch.zeros(2, 4, 100, head_dim, device="cuda", dtype=dtype)
    for dropout in (0.0, 0.1):
        want = CUDA_NAMES[int(torch._fused_sdp_choice(q, q, q, dropout_p=dropout))]
        assert sdpa_backend(q, q, q, dropout_p=dropout) == want
        assert ab._cuda_rule(q, q, q, dropout) == want


@pytest.fixture
def fresh_order(monkeypatch):
    """torch's backend order as a list the test reads, its setter recorded, and this process's once-flag reset."""
    state = dict(order=[1, 2, 0, 3, 4], sets=[])
    monkeypatch.setattr(torch._C, "_get_sdp_priority_order", lambda: list(state["order"]))
    monkeypatch.setattr(torch._C, "_set_sdp_priority_order", lambda order: state["sets"].append(list(order)))
    monkeypatch.setattr(ab, "_PREFERRED", [False])
    return state


def test_cudnn_goes_first_once_per_process_keeping_the_others_in_order(fresh_order, caplog):
    cuda = torch.device("cuda")
    with caplog.at_level(logging.INFO, logger=ab.__name__):
        assert ab.prefer_attention_kernels(cuda, "cudnn") == [3, 1, 2, 0, 4]
        fresh_order["order"] = [1, 3, 2, 0, 4]  # the user reordered since: left alone
        assert ab.prefer_attention_kernels(cuda, "cudnn") is None
    assert fresh_order["sets"] == [[3, 1, 2, 0, 4]]
    assert [r.getMessage() for r in caplog.records if r.name == ab.__name__] == [
        "attention_kernels='cudnn': cuDNN's attention first (process-wide SDPA backend order [3, 1, 2, 0, 4])"]


@pytest.mark.parametrize("device, setting, order", [
    ("cuda", "torch", [1, 2, 0, 3, 4]),  # torch's order asked for
    ("cpu", "cudnn", [1, 2, 0, 3, 4]),  # no CUDA attention here
    ("cuda", "cudnn", [3, 1, 2, 0, 4]),  # already first
])
def test_nothing_changes_where_nothing_is_to_change(fresh_order, device, setting, order):
    fresh_order["order"] = order
    assert ab.prefer_attention_kernels(torch.device(device), setting) is None
    assert fresh_order["sets"] == []


def test_a_torch_that_cannot_reorder_is_told(fresh_order, monkeypatch, caplog):
    monkeypatch.delattr(torch._C, "_set_sdp_priority_order")
    with caplog.at_level(logging.WARNING, logger=ab.__name__):
        assert ab.prefer_attention_kernels(torch.device("cuda"), "cudnn") is None
    assert "cannot reorder its attention backends" in caplog.text


@pytest.mark.parametrize("bad", ["auto", "flash", "", None])
def test_bad_settings_are_refused_with_the_valid_ones(bad):
    from opentad.models.backbones.wrapper_options import WrapperOptions
    from opentad.models.memory.policy import MemoryPolicy
    from opentad.registry import ConfigError
    with pytest.raises(ValueError, match="valid values: 'torch', 'cudnn'"):
        ab.prefer_attention_kernels(torch.device("cuda"), bad)
    with pytest.raises(ValueError, match="valid values: 'torch', 'cudnn'"):
        MemoryPolicy(attention_kernels=bad)
    with pytest.raises(ConfigError, match="attention_kernels"):
        WrapperOptions.from_mapping(dict(attention_kernels=bad))


def test_the_vit_and_the_policy_ask_before_any_block_is_profiled_or_run(monkeypatch):
    """The ViT asks with its policy's setting before its blocks run; the policy's ``run_backbone`` asks before
    its planner profiles (and so compiles) the blocks."""
    import dataclasses
    import types
    from opentad.models.backbones import vit as vit_module
    from opentad.models.memory import policy as policy_module
    from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
    calls = []
    for module in (vit_module, policy_module):
        monkeypatch.setattr(module, "prefer_attention_kernels",
                            lambda device, setting, who=module.__name__: calls.append((who, device.type, setting)))
    run_blocks = MemoryPolicy.run_blocks
    monkeypatch.setattr(MemoryPolicy, "run_blocks", lambda self, *a: calls.append("blocks") or run_blocks(self, *a))
    tiny = dict(img_size=32, patch_size=16, embed_dims=16, depth=1, num_heads=2, num_frames=4, return_feat_map=True)
    model = VisionTransformerCP(**tiny).eval()
    frames = torch.zeros(1, 3, 4, 32, 32)
    model(frames)
    assert calls == [(vit_module.__name__, "cpu", "torch"), "blocks"]
    calls.clear()
    apply_memory_policy(model, MemoryPolicy(attention_kernels="cudnn"))
    planner = types.SimpleNamespace(prepare=lambda *a: calls.append("profile"), plan_of=lambda block: None)
    policy = dataclasses.replace(model.memory_policy)
    object.__setattr__(policy, "planner", planner)  # in a budget planner's place (which would profile here)
    policy.run_backbone(model, frames)
    assert calls[:4] == [(policy_module.__name__, "cpu", "cudnn"), "profile", (vit_module.__name__, "cpu", "cudnn"),
                         "blocks"], calls


_CUDNN_FIRST = """
import torch, torch.nn.functional as F
from opentad.models.bricks.attention_backend import prefer_attention_kernels
from opentad.models.bricks.vit import Attention
q = torch.zeros(2, 4, 128, 64, device="cuda", dtype=torch.bfloat16)
usable = torch.backends.cuda.can_use_cudnn_attention(torch.backends.cuda.SDPAParams(q, q, q, None, 0.0, False, False))
prefer_attention_kernels(q.device, "cudnn")
F.scaled_dot_product_attention(q, q, q)  # torch's first call: its order stays ours
# the ViT-g attention's own q, k, v: 16 heads of 88, views of its qkv output, training
attn = Attention(embed_dims=1408, num_heads=16, qkv_bias=True).cuda().train()
seen = []
real = F.scaled_dot_product_attention
def spy(q, k, v, **kw):
    seen.append(int(torch._fused_sdp_choice(q, k, v, **kw)))
    return real(q, k, v, **kw)
F.scaled_dot_product_attention = spy
with torch.autocast("cuda", dtype=torch.bfloat16):
    attn(torch.randn(2, 968, 1408, device="cuda", requires_grad=True)).sum().backward()
print(int(usable), int(torch._fused_sdp_choice(q, q, q)), seen[0])
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_dispatch_runs_cudnn_once_first():
    """torch's own dispatcher picks cuDNN's kernel after ``"cudnn"`` where cuDNN takes the inputs, also for the
    ViT-g attention's permuted q, k, v under autocast with gradients (a process of its own: the order is
    process-wide). It does not cover compiled blocks (their graphs keep the kernel traced)."""
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", _CUDNN_FIRST], capture_output=True, text=True, check=True,
                         cwd=root).stdout
    usable, choice, vit_choice = map(int, out.split()[-3:])
    assert choice == vit_choice == (3 if usable else 1), out


_FIRST_ANSWER = """
import torch, torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from opentad.models.bricks.attention_backend import sdpa_backend
qkv = torch.randn(1, 968, 3, 16, 88, device="cuda", dtype=torch.bfloat16).permute(2, 0, 3, 1, 4)
q, k, v = (t.expand(4, 16, 968, 88) for t in qkv)  # the ViT-g attention's layout, before any attention call
name = sdpa_backend(q, k, v)
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    F.scaled_dot_product_attention(q, k, v)
    torch.cuda.synchronize()
kernels = [e.name.lower() for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
print(name, int(any("cudnn" in n for n in kernels)), int(any("flash" in n for n in kernels)))
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_first_answer_of_a_process_names_the_kernel_that_runs():
    """Asked before any attention call (as the ViT's log line is), the answer names the kernels the profiler
    then sees: cuDNN's (``cudnn_*``) or torch's flash kernels (``*flash*``, not cuDNN's). Torch 2.11 on an H100
    runs cuDNN's while its priority query still said flash first (the log line said flash before this test)."""
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", _FIRST_ANSWER], capture_output=True, text=True, check=True,
                         cwd=root).stdout.split()
    name, cudnn, flash = out[-3], int(out[-2]), int(out[-1])
    if name == "cudnn":
        assert cudnn, out
    elif name == "flash":
        assert flash and not cudnn, out
    else:
        assert not cudnn, out
