"""The memory budget's settings: its keys and a pinned plan's names checked with errors that name them, and a
budget above the card lowered to what the card holds (by hand: a 16 GiB card keeps 14.5 GiB for the step)."""
import dataclasses
import re

import pytest
import torch

pytest.importorskip("bitsandbytes")

from opentad.models.backbones.backbone_wrapper import WrapperOptions  # noqa: E402
from opentad.models.memory.budget import BudgetPlanner  # noqa: E402
from opentad.models.memory.planner import BlockPlan, BudgetError  # noqa: E402
from opentad.models.memory.policy import MemoryPolicy  # noqa: E402
from opentad.utils.config import ConfigError  # noqa: E402
from tests.models.memory.tiny_qlora import tiny_qlora_vit  # noqa: E402


def test_budget_keys_are_checked():
    options = WrapperOptions.from_mapping(dict(memory_budget_gib=20))
    assert options.memory_policy(torch.nn.Module()).planner.budget_gib == 20.0
    for bad in (0, -1, "20"):
        with pytest.raises(ConfigError, match="memory_budget_gib"):
            WrapperOptions.from_mapping(dict(memory_budget_gib=bad))
    with pytest.raises(ConfigError, match="temporal checkpointing"):
        WrapperOptions.from_mapping(dict(memory_budget_gib=20, temporal_checkpointing=True,
                                         temporal_checkpointing_chunk_num=2, temporal_checkpointing_chunk_dim=0))
    policy = MemoryPolicy(memory_budget_gib=8)
    assert dataclasses.replace(policy, frozen_mlp=False).planner is policy.planner  # one planner per policy
    assert dataclasses.replace(policy, backward_chunks=2).planner.chunks == 2  # ... with its own row groups


def test_memory_plan_keys_are_checked():
    options = WrapperOptions.from_mapping(dict(memory_budget_gib=20, memory_plan="checkpoint+chunks4+offload"))
    assert options.memory_policy(torch.nn.Module()).planner.pinned == BlockPlan(backward_chunks=4, offload=True)
    with pytest.raises(ConfigError, match=r"backbone custom: .*memory_plan='keep' .*needs memory_budget_gib"):
        WrapperOptions.from_mapping(dict(memory_plan="keep"))
    for bad in ("ck", "keep+offload", "checkpoint+hold+offload", "checkpoint+chunks1"):
        with pytest.raises(ConfigError, match=re.escape(f"memory_plan={bad!r} is not a plan: 'keep' or 'checkpoint'")):
            WrapperOptions.from_mapping(dict(memory_budget_gib=20, memory_plan=bad))


def test_a_budget_above_the_card_is_lowered_to_it(monkeypatch, caplog):
    """By hand: a 16 GiB card holds 16 - 1.5 = 14.5 GiB of the step; 22 is lowered to it, with a warning naming
    both; 12 stays; on an 80 GiB card 22 stays; a card below the reserve leaves nothing (then refused)."""
    from types import SimpleNamespace

    from opentad.models.memory import budget as budget_module
    from opentad.models.memory.budget import CARD_RESERVE_GIB, card_budget

    gib = 2**30
    assert CARD_RESERVE_GIB == 1.5
    assert card_budget(22, 16 * gib) == 14.5 and card_budget(12, 16 * gib) == 12.0
    assert card_budget(22, 80 * gib) == 22.0 and card_budget(5, gib) == 0.0
    monkeypatch.setattr(budget_module.torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(total_memory=16 * gib))
    monkeypatch.setattr(budget_module.torch.cuda, "get_device_name", lambda device: "a 16 GiB card")
    for configured, planned, warned in ((22.0, 14.5, True), (12.0, 12.0, False)):
        planner = BudgetPlanner(budget_gib=configured)
        caplog.clear()
        with caplog.at_level("WARNING", logger="opentad.models.memory.budget"):
            planner._fit_card(torch.device("cpu"))
        assert planner.budget == int(planned * gib) and planner.budget_gib == configured
        assert [r.getMessage() for r in caplog.records] == ([
            f"memory_budget_gib={configured:.2f} is more than a 16 GiB card holds (16.00 GiB, less 1.5 GiB for the "
            "CUDA context and cache): planning for 14.50 GiB; set memory_budget_gib for this card to silence this"
        ] if warned else [])


def test_a_refusal_after_lowering_the_budget_names_the_configured_budget_and_the_card(monkeypatch):
    """A 1.6 GiB card leaves 0.1 GiB of a configured 22: less than the 0.25 GiB reserve, so the plans are refused,
    and the error says that 22 was lowered, to what, and for which card."""
    from types import SimpleNamespace

    from opentad.models.memory import budget as budget_module

    monkeypatch.setattr(budget_module.torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(total_memory=int(1.6 * 2**30)))
    monkeypatch.setattr(budget_module.torch.cuda, "get_device_name", lambda device: "a small card")
    policy = MemoryPolicy(checkpoint=True, memory_budget_gib=22)
    policy.planner._fit_card(torch.device("cpu"))
    with pytest.raises(BudgetError, match=re.escape(
            "memory_budget_gib=0.10: weights, frames and reserve alone take 0.25 GiB; raise the budget, lower the "
            "batch or frames (memory_budget_gib=22 was lowered to 0.10 GiB: what a small card holds less 1.5 GiB)")):
        policy.planner.prepare(tiny_qlora_vit(), torch.randn(4, 3, 4, 32, 32), policy)
    unlowered = MemoryPolicy(checkpoint=True, memory_budget_gib=0.1)
    with pytest.raises(BudgetError, match=r"frames\Z"):  # no card note where nothing was lowered
        unlowered.planner.prepare(tiny_qlora_vit(), torch.randn(4, 3, 4, 32, 32), unlowered)
