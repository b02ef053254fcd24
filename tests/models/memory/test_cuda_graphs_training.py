"""``cuda_graphs`` through the real training loop (``train_one_epoch``: the detector's losses, gradient clipping,
the optimizer, the scheduler and the EMA) on the synthetic tiny QLoRA config, with the graphs emulated on the CPU
(what the policy-level tests check one step at a time, here over steps of the trainer; CUDA replays:
test_cuda_graphs_cuda.py).

Error model: the optimizer is SGD without momentum here, so each step moves a weight by ``-lr * (clipped
gradient + weight decay * weight)``, linear in the gradients. A graphed step computes the blocks' gradients with
the eager step's products; only float32 sums may be reordered, by at most ``n * eps * sum|terms|`` each. With
every sum of this model below ``n = 1024`` terms and ``sum|terms|`` below ``1024`` times the largest value
compared, the weights' total changes over the steps may differ by ``1024 * eps32 * 1024 * max|change|``
(0.125 of the largest change). A graphed step whose gradients miss the blocks, or reach them twice, differs by
the size of the change itself.
"""
import argparse

import pytest
import torch

from benchmarks.step_inputs import input_shape, load_row_config, random_batch
from opentad.cores.distributed import DistEnv
from opentad.cores.launch import RunContext, build_model, section
from opentad.cores.optimizer import build_optimizer
from opentad.cores.scheduler import build_scheduler
from opentad.cores.train_engine import train_one_epoch
from opentad.models.memory import cuda_graphs
from opentad.models.memory.graph_capture import EmulatedGraphBackend, Replay
from opentad.utils.ema import ModelEma
from opentad.utils.misc import set_seed

pytest.importorskip("bitsandbytes")

CONFIG = "configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora.py"
STEPS = 5
EPS32 = torch.finfo(torch.float32).eps


def _train(graphs: bool, monkeypatch):
    """``STEPS`` trainer iterations on other random batches; the model, its EMA and the weights before."""
    monkeypatch.setattr(cuda_graphs, "CudaGraphBackend", lambda: EmulatedGraphBackend(min_bytes=0))
    overrides = {"model.backbone.backbone.lora_dropout": 0.0,  # nothing drawn: graphs draw from other streams
                 "model.backbone.custom.cuda_graphs": graphs,
                 "optimizer.type": "SGD", "optimizer.lr": 0.1, "optimizer.backbone.custom": [
                     dict(name="adapter", lr=0.1, weight_decay=0.05), dict(name="lora", lr=0.1, weight_decay=0.05)]}
    cfg = load_row_config(CONFIG, overrides, None)
    set_seed(0)
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), distributed=False)
    model = build_model(RunContext(cfg=cfg, env=env, work_dir="", seed=0, config_path=CONFIG))
    optimizer = build_optimizer(section(cfg, "optimizer"), model)
    scheduler, _ = build_scheduler(section(cfg, "scheduler"), optimizer, 1)
    ema = ModelEma(model, decay=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    shape = input_shape(cfg, argparse.Namespace(frames=None, img_size=None))  # the config's window and size
    losses = []
    for k in range(STEPS):
        batch = random_batch(cfg, 2, shape, seed=k, device=torch.device("cpu"))
        out = train_one_epoch([batch], model, optimizer, scheduler, epoch=k, device=torch.device("cpu"),
                              model_ema=ema, clip_grad_norm=1.0, show_progress=False)
        losses.append(out["cost"])
    return model, ema, before, losses


def _graphs(model):
    """The BlockGraphs of the model's ViT (its memory policy's)."""
    return next(m.memory_policy.graphs for m in model.modules() if hasattr(m, "memory_policy"))


def test_graphed_training_through_the_trainer_follows_eager_training(monkeypatch):
    replays = []
    real = Replay.apply
    monkeypatch.setattr(Replay, "apply", lambda *a: replays.append(1) or real(*a))
    eager, _, before, eager_losses = _train(False, monkeypatch)
    assert not replays
    graphed, ema, before_g, graphed_losses = _train(True, monkeypatch)
    warmup = cuda_graphs.BlockGraphs().warmup
    assert len(replays) == STEPS - warmup  # eager warm-up calls, then the capture and a replay at each call
    assert all(torch.equal(before[n], before_g[n]) for n in before)  # the same start
    moved = 0
    for name, param in graphed.named_parameters():
        if not param.requires_grad:
            continue
        want = dict(eager.named_parameters())[name].detach() - before[name]
        got = param.detach() - before[name]
        bound = 1024 * EPS32 * 1024 * float(want.abs().max())
        assert float((got - want).abs().max()) <= bound, name
        moved += bool(want.abs().max() > 0) and ".blocks." in name
    assert moved > 0  # the blocks' adapters and LoRA factors trained
    assert graphed_losses[0] == eager_losses[0]  # the first step runs eagerly in both
    # the EMA's deep copy has graphs of its own, empty (it never trains), and averaged the graphed weights
    assert len(_graphs(graphed)) == 1 and len(_graphs(ema.module)) == 0
    assert _graphs(ema.module) is not _graphs(graphed)
    ema_weights = dict(ema.module.named_parameters())
    assert any(not torch.equal(ema_weights[n], before[n]) for n in before if ".blocks." in n)
    # the checkpoint's keys: the same with and without graphs, none of them the graphs'
    keys = set(graphed.state_dict())
    assert keys == set(eager.state_dict()) and not any("graph" in k for k in keys)
