"""The memory planner's choice: the fastest plans within the budget, checked against brute force.

Costs here are whole MiB and the search runs at 1 MiB, so the knapsack is exact and must find the brute-force
optimum. Times are sums of at most 6 floats in another order than the brute force's, so they agree to
``6 * eps * total``.
"""
import itertools
import random
import re

import pytest
import torch

from opentad.models.bricks.vit import FFN, Block
from opentad.models.memory.frozen_mlp import FrozenMLP
from opentad.models.memory.profile import profile_rows
from opentad.models.memory.planner import (
    MAX_CAPS,
    BlockPlan,
    BudgetError,
    PlanCost,
    candidate_plans,
    choose_plans,
    prefer_chunked,
)
from opentad.models.memory.cost_model import modelled_costs, vit_block_costs

MiB = 2**20
EPS = 2.0**-52


def _peak(costs, plans, fixed):
    chosen = [block[p] for block, p in zip(costs, plans)]
    return fixed + sum(c.saved for c in chosen) + max(c.transient for c in chosen)


def _brute_force(costs, budget, fixed):
    best = None
    for plans in itertools.product(*[list(block) for block in costs]):
        if _peak(costs, plans, fixed) <= budget:
            seconds = sum(block[p].seconds for block, p in zip(costs, plans))
            best = seconds if best is None else min(best, seconds)
    return best


def _random_costs(rng, blocks):
    plans = candidate_plans(chunks=4, quantized=True)[: rng.randint(2, 6)]
    return [
        {p: PlanCost(seconds=rng.uniform(0.1, 1.0), saved=rng.randint(0, 40) * MiB, transient=rng.randint(0, 20) * MiB)
         for p in plans}
        for _ in range(blocks)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_fastest_within_budget_as_brute_force(seed):
    rng = random.Random(seed)
    costs = _random_costs(rng, rng.randint(1, 5))
    fixed = rng.randint(0, 50) * MiB
    budget = fixed + rng.randint(0, 150) * MiB
    want = _brute_force(costs, budget, fixed)
    if want is None:
        with pytest.raises(BudgetError, match="memory_budget_gib") as info:
            choose_plans(costs, budget=budget, fixed=fixed, unit_bytes=MiB)
        # the need it names is the least peak of any assignment, above the budget
        least = min(_peak(costs, plans, fixed) for plans in itertools.product(*[list(block) for block in costs]))
        assert info.value.needed == least > budget
        return
    plan = choose_plans(costs, budget=budget, fixed=fixed, unit_bytes=MiB)
    assert _peak(costs, plan.plans, fixed) == plan.peak <= budget  # never over budget, peak reported as modelled
    assert abs(plan.seconds - want) <= 6 * EPS * want
    assert abs(sum(b[p].seconds for b, p in zip(costs, plan.plans)) - plan.seconds) <= 6 * EPS * want


def test_coarse_units_stay_within_budget_and_a_bigger_budget_is_never_slower():
    rng = random.Random(7)
    costs = [{p: PlanCost(seconds=rng.uniform(0.1, 1), saved=rng.randint(1, 10**9), transient=rng.randint(1, 10**9))
              for p in candidate_plans(chunks=4, quantized=True)} for _ in range(30)]
    times = []
    for budget in (12, 16, 24, 40, 80):
        plan = choose_plans(costs, budget=budget * 2**30, fixed=2 * 2**30)  # default unit: budget / 8192
        assert _peak(costs, plan.plans, 2 * 2**30) <= budget * 2**30
        times.append(plan.seconds)
    assert times == sorted(times, reverse=True)


def test_hand_worked_choice():
    keep, ckpt = BlockPlan(checkpoint=False), BlockPlan()
    block = {keep: PlanCost(seconds=2.0, saved=10 * MiB, transient=3 * MiB),
             ckpt: PlanCost(seconds=3.0, saved=1 * MiB, transient=5 * MiB)}
    # 3 blocks, fixed 0: all keep needs 30 + 3 = 33 MiB; two keep + one checkpoint 21 + 5 = 26; one keep 12 + 5 = 17
    assert choose_plans([block] * 3, budget=33 * MiB, fixed=0, unit_bytes=MiB).plans == (keep,) * 3
    plan = choose_plans([block] * 3, budget=32 * MiB, fixed=0, unit_bytes=MiB)
    assert sorted(p.name for p in plan.plans) == ["checkpoint", "keep", "keep"] and plan.seconds == 7.0
    assert plan.peak == 26 * MiB
    assert choose_plans([block] * 3, budget=17 * MiB, fixed=0, unit_bytes=MiB).seconds == 8.0
    assert choose_plans([block] * 3, budget=8 * MiB, fixed=0, unit_bytes=MiB).plans == (ckpt,) * 3
    with pytest.raises(BudgetError, match=r"memory_budget_gib=0\.01: the smallest plans need 0\.01 GiB") as info:
        choose_plans([block] * 3, budget=7 * MiB, fixed=0, unit_bytes=MiB)
    assert info.value.needed == 8 * MiB  # all checkpoint: 3 x 1 kept + 5 working


def test_the_named_need_comes_from_one_plan_per_block():
    """The plan keeping least (offloaded: nothing) works in more memory than checkpointing: the least peak is not
    least kept plus least working set, taken from different plans (1 MiB, below the refused budget), but the least
    of the actual choices (4 MiB: all checkpoint)."""
    offload, ckpt = BlockPlan(offload=True), BlockPlan()
    block = {offload: PlanCost(seconds=3.0, saved=0, transient=8 * MiB),
             ckpt: PlanCost(seconds=2.0, saved=1 * MiB, transient=1 * MiB)}
    with pytest.raises(BudgetError) as info:
        choose_plans([block] * 3, budget=3 * MiB, fixed=0, unit_bytes=MiB)
    assert info.value.needed == 4 * MiB  # all checkpoint: 3 x 1 kept + 1 working (offloading: 0 + 8)
    assert choose_plans([block] * 3, budget=4 * MiB, fixed=0, unit_bytes=MiB).plans == (ckpt,) * 3


def test_many_distinct_blocks_still_find_the_exact_fit():
    """More distinct working sets than the search tries: the budget that all-checkpoint meets exactly still fits."""
    keep, ckpt = BlockPlan(checkpoint=False), BlockPlan()
    blocks = [{keep: PlanCost(seconds=1.0, saved=30 * MiB, transient=(100 + 2 * i) * MiB),
               ckpt: PlanCost(seconds=2.0, saved=1 * MiB, transient=(101 + 2 * i) * MiB)} for i in range(MAX_CAPS + 6)]
    exact = len(blocks) * MiB + (101 + 2 * (len(blocks) - 1)) * MiB
    plan = choose_plans(blocks, budget=exact, fixed=0, unit_bytes=MiB)
    assert plan.plans == (ckpt,) * len(blocks) and plan.peak == exact


def test_nothing_to_plan():
    assert choose_plans([], budget=10 * MiB, fixed=4 * MiB).plans == ()
    with pytest.raises(BudgetError, match="alone take"):
        choose_plans([], budget=MiB, fixed=4 * MiB)


def test_profile_slices_hold_whole_videos():
    # room for everything: the whole batch (a slice would run the chunked plans on smaller chunks than the step)
    assert profile_rows(96, 800, 384, fixed=0, budget=2**40, unit=48) == 96
    # one row of a keep plan is 28 * 800 * 384 * 2 bytes: half the free memory holds 30 of 96 rows, so one
    # whole video of 48
    row = 28 * 800 * 384 * 2
    assert profile_rows(96, 800, 384, fixed=row, budget=61 * row, unit=48) == 48
    # one clip per video: at least the 4 row groups of the chunked plans, never more than the batch
    assert profile_rows(13, 800, 384, fixed=0, budget=4 * row, unit=1, least=4) == 4
    assert profile_rows(3, 800, 384, fixed=0, budget=2**40, unit=1, least=4) == 3
    # a tight budget: half the free memory allows 2 rows
    assert profile_rows(64, 800, 384, fixed=0, budget=4 * row, unit=1, least=2) == 2
    assert profile_rows(64, 800, 384, fixed=0, budget=10 * row, unit=1, least=2) == 5


def test_a_chunked_twin_within_the_tie_replaces_plain_checkpointing():
    ckpt, c4, off, c4off, keep = (BlockPlan(), BlockPlan(backward_chunks=4), BlockPlan(offload=True),
                                  BlockPlan(backward_chunks=4, offload=True), BlockPlan(checkpoint=False))
    costs = {keep: PlanCost(50.0, 90 * MiB, 2 * MiB), ckpt: PlanCost(100.0, MiB, 6 * MiB),
             c4: PlanCost(102.0, MiB, 3 * MiB), off: PlanCost(100.0, 0, 7 * MiB), c4off: PlanCost(110.0, 0, 4 * MiB)}
    kept = prefer_chunked(costs, tie=0.05)
    # 102 <= 100 * 1.05: the chunked twin wins; 110 > 105: offloaded plain checkpointing stays
    assert list(kept) == [keep, c4, off, c4off] and kept[c4] is costs[c4]
    assert list(prefer_chunked(costs, tie=0.01)) == list(costs)  # 102 > 101: nothing dropped
    # a chunked twin that keeps more (its input and its adapter's) is no match, however fast: dropping the plain
    # plan could leave a budget without a plan that fits
    # (10 blocks of it alone: 8 + 10 * 3 + 3 = 41 MiB, over a budget of 26 that 10 plain plans fit, 8 + 10 + 6;
    # kept bytes within 1 MiB count as equal)
    roomy = {ckpt: PlanCost(100.0, MiB, 6 * MiB), c4: PlanCost(102.0, 3 * MiB, 3 * MiB)}
    assert list(prefer_chunked(roomy)) == [ckpt, c4]
    assert choose_plans([prefer_chunked(roomy)] * 10, budget=26 * MiB, fixed=8 * MiB, unit_bytes=MiB).plans == (ckpt,) * 10
    # no chunked twin (chunks=1): nothing to prefer
    assert prefer_chunked({ckpt: costs[ckpt], keep: costs[keep]}) == {ckpt: costs[ckpt], keep: costs[keep]}
    # a budget too small to keep the block: the chunked plan, though profiled 2% slower
    unoffloaded = {p: c for p, c in costs.items() if not p.offload}
    plan = choose_plans([prefer_chunked(unoffloaded)], budget=20 * MiB, fixed=8 * MiB, unit_bytes=MiB)
    assert plan.plans == (c4,) and plan.seconds == 102.0
    assert choose_plans([unoffloaded], budget=20 * MiB, fixed=8 * MiB, unit_bytes=MiB).plans == (ckpt,)


def test_candidate_plans():
    names = [p.name for p in candidate_plans(chunks=4, quantized=True)]
    assert names == [
        "keep", "checkpoint", "checkpoint+chunks4", "checkpoint+offload", "checkpoint+chunks4+offload",
        "keep+hold", "checkpoint+hold", "checkpoint+chunks4+hold", "checkpoint+offload+hold",
        "checkpoint+chunks4+offload+hold",
    ]
    assert [p.name for p in candidate_plans(chunks=1, offload=False)] == ["keep", "checkpoint"]


def test_modelled_costs_by_hand():
    plans = candidate_plans(chunks=2, quantized=True)
    costs = modelled_costs(plans, rows=2, tokens=3, width=4, hidden=16, element_bytes=2, forward_seconds=1.0,
                           dequant_seconds=0.25, held_bytes=100, offload_seconds=0.5)
    per_token = 2 * 3 * 2  # rows * tokens * bytes
    keep = costs[BlockPlan(checkpoint=False)]
    assert keep == PlanCost(seconds=2 + 2 * 0.25, saved=(8 * 4 + 16) * per_token, transient=(3 * 4 + 16) * per_token)
    chunked = costs[BlockPlan(backward_chunks=2, offload=True, hold=True)]
    assert chunked == PlanCost(seconds=3 + 0.5, saved=100, transient=(8 * 4 + 16) * per_token // 2 + 4 * per_token)
    assert costs[BlockPlan()].saved == 4 * per_token and costs[BlockPlan()].seconds == 3 + 3 * 0.25
    # the chunked recomputation skips the MLP's second product: its own time, plain checkpointing keeps a forward
    cheaper = modelled_costs(plans, rows=2, tokens=3, width=4, hidden=16, forward_seconds=1.0, recompute_seconds=0.75)
    assert cheaper[BlockPlan(backward_chunks=2)].seconds == 2 + 0.75
    assert cheaper[BlockPlan()].seconds == 3 and cheaper[BlockPlan(checkpoint=False)].seconds == 2


def test_plan_names_read_back():
    plans = candidate_plans(chunks=3, quantized=True, offload=True)
    assert len({p.name for p in plans}) == len(plans) == 10
    for plan in plans:
        assert BlockPlan.from_name(plan.name) == plan
    assert BlockPlan.from_name("checkpoint+chunks12") == BlockPlan(backward_chunks=12)
    for bad in ("", "Keep", "keep+chunks4", "keep+offload", "checkpoint+hold+offload", "checkpoint+chunks",
                "checkpoint+chunks1", "checkpoint+chunks04", "checkpoint+offload+offload", "checkpoint+",
                "checkpoint+chunks\u00b2"):
        with pytest.raises(ValueError, match=re.escape(f"memory_plan={bad!r} is not a plan")):
            BlockPlan.from_name(bad)


def test_block_costs_count_the_skipped_fc2_only_where_the_recomputation_skips_it():
    """The chunked recomputation is cheaper by ``fc2``'s multiply-adds for a frozen MLP with an exact GELU run as a
    FrozenMLP (eager) or in a compiled block (autograd's MLP there: ``unused_output_mlp``); autograd's MLP in an
    eager block (``frozen_mlp=False``), a tanh GELU or a trainable ``fc2`` recompute all of it, and plain
    checkpointing always does."""
    rows, tokens, width = 3, 5, 16
    block = Block(embed_dims=width, num_heads=2).requires_grad_(False)
    hidden = block.mlp.layers[0][0].out_features
    forward = rows * tokens * (4 * width * width + 2 * width * hidden)  # multiply-adds of the linear layers
    chunked, plain = BlockPlan(backward_chunks=2), BlockPlan()

    def seconds(mlp_class, plan):
        block.mlp.__class__ = mlp_class  # as the memory policy switches it
        return vit_block_costs(block, [chunked, plain], rows, tokens, width, torch.float32)[plan].seconds

    skipped = 2 * forward + rows * tokens * (4 * width * width + width * hidden)
    assert seconds(FrozenMLP, chunked) == skipped and seconds(FFN, chunked) == 3 * forward
    block._compile_key = (True, "inductor")  # as compile_blocks marks a compiled block
    assert seconds(FFN, chunked) == skipped
    assert seconds(FFN, plain) == seconds(FrozenMLP, plain) == 3 * forward
    block.mlp.layers[1].requires_grad_(True)  # a trainable fc2 (its weight gradient reads its input): no skip
    assert seconds(FrozenMLP, chunked) == seconds(FFN, chunked) == 3 * forward
    del block._compile_key
    block.mlp.layers[1].requires_grad_(False)
    block.mlp.layers[0][1].approximate = "tanh"  # FrozenMLP then runs autograd's MLP: no skip
    assert seconds(FrozenMLP, chunked) == 3 * forward
