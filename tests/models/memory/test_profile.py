"""The budget's profile runs inside the training forward: it must leave no trace in the parameters' gradients.

The profile (``profile._run_once``) runs a block forward and backward during the first training forward of an
input shape, which under DDP is inside ``DistributedDataParallel.forward``. Gradients accumulated into the
parameters there would fire DDP's hooks; a static graph (``solver.static_graph``, the THUMOS configs' setting)
counts them in its first step and then waits for that many per step, and the third step fails ("Expected to have
finished reduction in the prior iteration"). The CUDA calls of the profile are replaced by CPU stand-ins here
(timing and memory statistics are not what is tested).
"""
import torch
import torch.distributed as dist
from torch import nn

from opentad.models.memory import profile
from opentad.models.memory.planner import BlockPlan


class _Event:
    def __init__(self, enable_timing=False):
        pass

    def record(self):
        pass

    def elapsed_time(self, other):
        return 1.0


def _cpu_stand_ins(monkeypatch):
    for name in ("synchronize", "reset_peak_memory_stats"):
        monkeypatch.setattr(profile.torch.cuda, name, lambda device=None: None)
    for name in ("memory_allocated", "max_memory_allocated"):
        monkeypatch.setattr(profile.torch.cuda, name, lambda device=None: 0)
    monkeypatch.setattr(profile.torch.cuda, "Event", _Event)


class _Policy:
    """Runs a block as the memory policy would, without recomputation (what is run does not matter here)."""

    def execute(self, block, x, grid, *, checkpoint, chunks):
        return block(x)


class _Model(nn.Module):
    """Three trainable blocks; the first training forward profiles block 1 first, as the budget does."""

    def __init__(self, profiled: bool):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
        self.profiled = profiled
        self.fired = []
        for p in self.blocks[1].parameters():
            p.register_post_accumulate_grad_hook(lambda p: self.fired.append(torch.is_grad_enabled()))

    def forward(self, x):
        if self.profiled and torch.is_grad_enabled():
            self.profiled = False
            before = len(self.fired)
            for _ in range(3):
                profile._run_once(_Policy(), self.blocks[1], x, (1, 1), BlockPlan())
            assert len(self.fired) == before and all(p.grad is None for p in self.blocks[1].parameters())
        for block in self.blocks:
            x = block(x)
        return x


def _train(profiled: bool):
    torch.manual_seed(0)
    model = _Model(profiled)
    ddp = nn.parallel.DistributedDataParallel(model, static_graph=True)
    optim = torch.optim.SGD(ddp.parameters(), lr=0.1)
    data = torch.Generator().manual_seed(1)
    for _ in range(4):  # a static graph fails at the third step when the profile's gradients were counted
        optim.zero_grad(set_to_none=True)
        ddp(torch.randn(4, 8, generator=data)).square().sum().backward()
        optim.step()
    return [p.detach().clone() for p in model.parameters()]


def test_the_profile_accumulates_no_gradient_and_a_static_ddp_graph_trains(monkeypatch, tmp_path):
    _cpu_stand_ins(monkeypatch)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with_profile, without = _train(True), _train(False)
    finally:
        dist.destroy_process_group()
    for a, b in zip(with_profile, without):  # the same arithmetic: the profile changed no gradient
        assert torch.equal(a, b)


def test_recomputed_and_chunked_plans_leave_no_gradient_either(monkeypatch):
    """The same through the memory policy's own execution: kept and checkpointed blocks (a chunked plan on a block
    whose attention and MLP train runs checkpointed as a whole)."""
    from opentad.models.bricks.vit import Block
    from opentad.models.memory.policy import MemoryPolicy

    _cpu_stand_ins(monkeypatch)
    torch.manual_seed(0)
    block = Block(embed_dims=16, num_heads=2)
    fired = []
    for p in block.parameters():
        p.register_post_accumulate_grad_hook(lambda p: fired.append(p))
    x = torch.randn(4, 6, 16)
    for plan in (BlockPlan(), BlockPlan(backward_chunks=2), BlockPlan(checkpoint=False)):
        profile._run_once(MemoryPolicy(), block, x, (2, 3), plan)
    assert fired == [] and all(p.grad is None for p in block.parameters())
