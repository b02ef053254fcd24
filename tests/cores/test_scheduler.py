"""Learning-rate schedules: hand-computed values, upstream's recursive form, state round trip."""
import math

import pytest
import torch

from opentad.cores.scheduler import LinearWarmupCosineAnnealingLR, build_scheduler, check_scheduler_section
from opentad.registry import ConfigError


def make_optimizer(lrs=(1.0,)):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    return torch.optim.SGD([dict(params=[p], lr=lr) for p, lr in zip(params, lrs)], lr=lrs[0])


def run(scheduler, optimizer, steps):
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs


def test_cosine_hand_computed_values():
    optimizer = make_optimizer()
    cfg = dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=2, max_epoch=4, eta_min=0.0)
    scheduler, max_epoch = build_scheduler(cfg, optimizer, iters_per_epoch=3)  # 6 warm-up, 12 total iterations
    assert max_epoch == 4
    lrs = [v[0] for v in run(scheduler, optimizer, 13)]
    # warm-up: 0, 1/5, ..., 1 at step 5 (upstream divides by warmup - 1); cosine over steps 6..12
    expected = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 6)), 0.75, 0.5, 0.25,
                0.5 * (1 + math.cos(5 * math.pi / 6)), 0.0]
    assert lrs == pytest.approx(expected, abs=1e-12)


def upstream_recursive(base_lr, warmup, total, start_lr, eta_min, steps):
    """Upstream's chainable form, written out step by step."""
    lr, out = None, []
    for t in range(steps):
        if t == 0:
            lr = start_lr
        elif t < warmup:
            lr = lr + (base_lr - start_lr) / (warmup - 1)
        elif t == warmup:
            lr = base_lr
        else:
            ratio = (1 + math.cos(math.pi * (t - warmup) / (total - warmup))) / (
                1 + math.cos(math.pi * (t - warmup - 1) / (total - warmup)))
            lr = ratio * (lr - eta_min) + eta_min
        out.append(lr)
    return out


def test_matches_upstream_recursive_form_for_two_groups():
    optimizer = make_optimizer((1e-3, 1e-4))
    scheduler = LinearWarmupCosineAnnealingLR(
        optimizer, warmup_iters=7, max_iters=40, warmup_start_lr=1e-6, eta_min=1e-8
    )
    got = run(scheduler, optimizer, 40)
    for i, base in enumerate((1e-3, 1e-4)):
        ref = upstream_recursive(base, 7, 40, 1e-6, 1e-8, 40)
        assert [g[i] for g in got] == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_state_dict_round_trip_continues_identically():
    opt_a = make_optimizer()
    sched_a = LinearWarmupCosineAnnealingLR(opt_a, warmup_iters=3, max_iters=10)
    run(sched_a, opt_a, 4)
    opt_b = make_optimizer()
    sched_b = LinearWarmupCosineAnnealingLR(opt_b, warmup_iters=3, max_iters=10)
    sched_b.load_state_dict(sched_a.state_dict())
    opt_b.load_state_dict(opt_a.state_dict())
    assert run(sched_a, opt_a, 6) == run(sched_b, opt_b, 6)


def test_multistep_with_warmup():
    optimizer = make_optimizer()
    cfg = dict(type="LinearWarmupMultiStepLR", warmup_epoch=1, max_epoch=5, milestones=[2, 4], gamma=0.5)
    scheduler, _ = build_scheduler(cfg, optimizer, iters_per_epoch=2)
    lrs = [v[0] for v in run(scheduler, optimizer, 10)]
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_checker_and_build_errors():
    assert any("warmup_epochs" in e for e in check_scheduler_section(
        dict(type="LinearWarmupCosineAnnealingLR", warmup_epochs=5, max_epoch=10), "scheduler"))
    assert any("max_epoch" in e for e in check_scheduler_section(
        dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=5), "scheduler"))
    assert any("iters_per_epoch" in e for e in check_scheduler_section(
        dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=1, max_epoch=2, iters_per_epoch=3), "scheduler"))
    assert check_scheduler_section(dict(type="CosineLR", max_epoch=2), "scheduler")
    with pytest.raises(ConfigError, match="empty"):
        build_scheduler(dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=1, max_epoch=2), make_optimizer(), 0)
