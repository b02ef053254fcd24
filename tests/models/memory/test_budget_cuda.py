"""On a GPU: a training step under ``memory_budget_gib`` stays within the budget, and computes what the run
without a budget computes.

The QLoRA-AdaTAD VideoMAE-S backbone of the THUMOS configs (frozen NF4 ViT, bf16 storage) at batch 2, 768
frames, 160 px, built on the GPU, two steps. The peak is ``torch.cuda.max_memory_allocated`` over building and
both steps. Error model of the loss comparison: the plans change where values wait and when they are
recomputed, not the products: the first step's forward runs the same kernels on the same values, except that a
kernel may accumulate in another order, which can move each of the 12 blocks' bf16 outputs to a neighbouring
value (2**-8 relative); so the losses agree to 12 * 2**-8, relative.
"""
import argparse

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

GiB = 2**30
ARGS = argparse.Namespace(frames=768, adapter_start=0, backward_chunks=4)


def _step_losses(budget):
    pytest.importorskip("bitsandbytes")
    from benchmarks.backbone_modes import MODES
    from opentad.registry import BACKBONES, build

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    cfg = MODES["qlora_bf16"]("s", ARGS)
    if budget is not None:
        cfg["custom"]["memory_budget_gib"] = budget
    with torch.device("cuda"):
        wrapper = build(cfg, BACKBONES).train()
    optimizer = torch.optim.AdamW([p for p in wrapper.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (2, 1, 3, 768, 160, 160), dtype=torch.uint8, generator=generator).cuda()
    masks = torch.ones(2, 768, dtype=torch.bool, device="cuda")
    losses = []
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = wrapper(frames, masks).float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
    torch.cuda.synchronize()
    planner = wrapper.memory.planner
    del wrapper, optimizer
    return losses, torch.cuda.max_memory_allocated() / GiB, planner


@pytest.mark.parametrize("budget", [3.0, 6.0])
def test_peak_stays_within_the_budget_and_the_loss_is_unchanged(budget):
    reference, _, _ = _step_losses(None)
    losses, peak, planner = _step_losses(budget)
    assert peak <= budget, f"peak {peak:.3f} GiB over the budget {budget} GiB ({planner.last.summary()})"
    assert planner.last.peak <= budget * GiB
    assert abs(losses[0] - reference[0]) <= 12 * 2.0**-8 * abs(reference[0])


def test_a_budget_below_the_smallest_plans_is_refused_before_training():
    from opentad.models.memory.planner import BudgetError

    refused = r"memory_budget_gib=1\.00: (the smallest plans need|weights, frames and reserve alone)"
    with pytest.raises(BudgetError, match=refused):
        _step_losses(1.0)
