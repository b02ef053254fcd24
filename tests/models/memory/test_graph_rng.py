"""Random numbers of captured blocks: a bound function draws from its own generator; checkpointing outside a
capture keeps torch's own RNG replay, inside one draws from the owner's generator in forward and recomputation."""
import torch
from torch import nn

from opentad.models.memory.graph_rng import bound_generator, capturing, checkpoint_bound, drawing_for


def test_bound_generators_draw_from_their_own_stream():
    generator = torch.Generator().manual_seed(3)
    before = torch.random.get_rng_state()
    drawn = bound_generator(lambda: torch.rand(4), generator)()
    assert torch.equal(torch.random.get_rng_state(), before)  # the default generator did not move
    assert torch.equal(drawn, torch.rand(4, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(bound_generator(lambda: torch.rand(4), generator)(), drawn)  # it advanced


class _Noisy(nn.Module):
    """``x * mask`` with a fresh uniform mask: a recomputation drawing other numbers gives another gradient."""

    def forward(self, x):
        return x * torch.rand_like(x)


def _input_grad(run):
    x = torch.ones(6, requires_grad=True)
    out = run(x)
    out.sum().backward()
    return out.detach(), x.grad


def test_outside_a_capture_checkpointing_replays_the_default_generator():
    module = _Noisy()
    torch.manual_seed(0)
    out, grad = _input_grad(lambda x: checkpoint_bound(module, module, x))
    assert torch.equal(grad, out)  # d(x * mask)/dx = mask = out for x = 1: the recomputation drew the same mask
    with drawing_for(module):  # no capture: nothing changes
        torch.manual_seed(0)
        assert torch.equal(torch.rand(6), torch.rand(6, generator=torch.Generator().manual_seed(0)))


def test_inside_a_capture_the_owner_draws_from_its_generator():
    module = _Noisy()
    generator = torch.Generator().manual_seed(7)
    state = generator.get_state()
    with capturing({id(module): generator}):
        x = torch.ones(6, requires_grad=True)
        out = checkpoint_bound(module, module, x)
        with drawing_for(module):
            torch.rand(1)  # drawn from the owner's generator too
    assert torch.equal(out.detach(), torch.rand(6, generator=torch.Generator().manual_seed(7)))
    generator.set_state(state)  # what the graphs do before the backward replay
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())  # the recomputation drew the forward's mask
