"""train_one_epoch / val_one_epoch on a toy model: a learning step, clipping, AMP choice, non-finite losses,
the logged step and data-wait times."""
import time

import pytest
import torch
import torch.nn as nn

from opentad.cores.train_engine import (
    NonFiniteGradientError,
    NonFiniteLossError,
    resolve_amp_dtype,
)
from opentad.cores.train_engine import train_one_epoch, val_one_epoch
from opentad.utils.ema import ModelEma

CPU = torch.device("cpu")


class ToyDetector(nn.Module):
    """Regresses a per-sample target from features; the loss dict follows the detector contract."""

    def __init__(self, poison_at=None):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.calls = 0
        self.poison_at = poison_at

    def forward(self, inputs, masks, metas, gt_segments=None, gt_labels=None, return_loss=True, **kwargs):
        pred = self.linear(inputs).squeeze(-1)
        target = torch.stack([s.sum() for s in gt_segments])
        reg = ((pred - target) ** 2).mean()
        cls = pred.abs().mean() * 0.0
        if self.poison_at is not None and self.calls == self.poison_at:
            reg = reg * float("nan")
        self.calls += 1
        return {"cls_loss": cls, "reg_loss": reg, "cost": cls + reg}


def batches(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(2, 3, generator=g)
        out.append(dict(inputs=x, masks=torch.ones(2, 1, dtype=torch.bool), metas=[{}, {}],
                        gt_segments=[x[i, :1] * 2 for i in range(2)], gt_labels=[torch.zeros(1)] * 2))
    return out


def make(model, lr=0.1):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return optimizer, scheduler


def test_one_epoch_learns_and_updates_ema():
    torch.manual_seed(0)
    model = ToyDetector()
    optimizer, scheduler = make(model)
    ema = ModelEma(model, decay=0.5)
    loader = batches(8)
    first = val_one_epoch(loader, model, epoch=0, device=CPU, show_progress=False)
    for epoch in range(5):
        stats = train_one_epoch(loader, model, optimizer, scheduler, epoch=epoch, device=CPU, model_ema=ema,
                                show_progress=False, logging_interval=2)
    assert set(stats) == {"cls_loss", "reg_loss", "cost"}
    assert val_one_epoch(loader, model, epoch=5, device=CPU, show_progress=False) < 0.2 * first
    assert scheduler.last_epoch == 40
    assert not torch.equal(ema.module.linear.weight, model.linear.weight)  # averaged, lagging behind


class SlowLoader:
    """Batches after a fixed wait each (a loader that cannot keep up), and a model step of a fixed cost."""

    def __init__(self, items, wait, first_wait):
        self.items, self.wait, self.first_wait = items, wait, first_wait

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        for i, item in enumerate(self.items):
            time.sleep(self.first_wait if i == 0 else self.wait)
            yield item


class SlowDetector(ToyDetector):
    def forward(self, *args, **kwargs):
        time.sleep(0.02)
        return super().forward(*args, **kwargs)


def test_log_line_gives_iteration_and_data_wait_times(log_text):
    """time = mean wall time of an iteration, data = the part spent in next(loader): 60 ms waits and 20 ms
    model calls give data ~0.06 s of time ~0.08 s (bounds loose for a loaded machine); the first wait (the
    loader's workers starting, here 1 s) is left out of both."""
    model = SlowDetector()
    optimizer, scheduler = make(model)
    train_one_epoch(SlowLoader(batches(4), wait=0.06, first_wait=1.0), model, optimizer, scheduler, epoch=0, device=CPU,
                    show_progress=False, logging_interval=100)
    line = [l for l in log_text().splitlines() if l.startswith("[Train]")][-1]
    fields = dict(f.split("=") for f in line.split() if "=" in f)
    step, data = float(fields["time"].rstrip("s")), float(fields["data"].rstrip("s"))
    assert 0.06 <= data < step and step - data >= 0.0195, line  # 3-decimal rounding of both
    assert step < 0.5, line


def test_clipping_bounds_the_step():
    model = ToyDetector()
    optimizer, scheduler = make(model, lr=1.0)
    before = model.linear.weight.detach().clone()
    big = batches(1)
    big[0]["gt_segments"] = [torch.tensor([1e3]), torch.tensor([-1e3])]
    train_one_epoch(big, model, optimizer, scheduler, epoch=0, device=CPU, clip_grad_norm=0.5, show_progress=False)
    step = torch.cat([(model.linear.weight - before).flatten(), model.linear.bias.detach().flatten()])
    assert step[:3].norm() <= 0.5 + 1e-6


def test_nan_loss_stops_with_epoch_iteration_and_terms():
    model = ToyDetector(poison_at=2)
    optimizer, scheduler = make(model)
    with pytest.raises(NonFiniteLossError) as info:
        train_one_epoch(batches(4), model, optimizer, scheduler, epoch=7, device=CPU, show_progress=False)
    message = str(info.value)
    assert "epoch 7" in message and "iteration 2/4" in message
    assert "reg_loss=nan" in message and "cls_loss=0" in message and "cost=nan" in message
    assert torch.isfinite(model.linear.weight).all()  # the bad step was not taken


def test_nan_loss_names_the_samples_and_the_one_with_broken_inputs():
    """A NaN feature in one sample (a broken feature file) makes the loss NaN: the message names the batch's
    videos (a window by its first frame) and which one holds the NaN; nothing else is suspected."""
    model = ToyDetector()
    optimizer, scheduler = make(model)
    batch = batches(1)[0]
    batch["inputs"][1, 2] = float("nan")
    batch["metas"] = [{"video_name": "clip_a"}, {"video_name": "clip_b", "window_start_frame": 128}]
    with pytest.raises(NonFiniteLossError) as info:
        train_one_epoch([batch], model, optimizer, scheduler, epoch=0, device=CPU, show_progress=False)
    message = str(info.value)
    assert "Samples of this process's batch: ['clip_a', 'clip_b@frame128']." in message
    assert "Suspect: inputs of clip_b@frame128 hold NaN or inf." in message
    assert "clip_a hold" not in message and "ground truth of" not in message and "another process" not in message


def test_nan_loss_names_reversed_ground_truth_and_another_process():
    """The loss averaged over processes is NaN while this process's own is finite: the other process's batch
    is at fault, said so; this process's reversed segment (end < start) is still named."""
    from opentad.cores.train_engine import _check_finite

    batch = dict(inputs=torch.zeros(2, 3), metas=[{"video_name": "v1"}, {}],
                 gt_segments=[torch.tensor([[1.0, 2.0]]), torch.tensor([[5.0, 4.0]])])
    with pytest.raises(NonFiniteLossError) as info:
        _check_finite({"cost": float("inf")}, 3, 1, 9, batch, {"cost": torch.tensor(0.5)})
    message = str(info.value)
    assert "['v1', '?'] (its own loss is finite: another process's batch gave the non-finite value)" in message
    assert "Suspect: ground truth of ? is non-finite or has end < start." in message and "v1 is" not in message


class PoisonedGradient(torch.autograd.Function):
    """Identity forward; backward returns NaN for the first ``bad`` values (a finite loss, a broken gradient)."""

    @staticmethod
    def forward(ctx, x, bad):
        ctx.bad = bad
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        grad.view(-1)[: ctx.bad] = float("nan")
        return grad, None


def test_nan_gradient_with_finite_loss_names_the_parameter_and_skips_the_step():
    torch.manual_seed(0)
    model = ToyDetector()
    model.extra = nn.Parameter(torch.ones(4))
    forward = model.forward

    def poisoned(**kw):
        losses = forward(**kw)
        term = PoisonedGradient.apply(model.extra, 2).sum() * 0.0 + losses["cost"]
        return {**losses, "cost": term}

    model.forward = poisoned
    optimizer, scheduler = make(model)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    with pytest.raises(NonFiniteGradientError) as info:
        train_one_epoch(batches(2), model, optimizer, scheduler, epoch=0, device=CPU, clip_grad_norm=1.0,
                        show_progress=False)
    message = str(info.value)
    assert "extra (2/4 values)" in message and "1 parameter(s)" in message and "linear" not in message
    for name, param in model.named_parameters():  # nothing stepped, nothing clipped into NaN
        assert torch.equal(param, before[name]), name
    assert torch.isfinite(model.linear.weight.grad).all()


def test_amp_resolution():
    assert resolve_amp_dtype(True, CPU) is None  # fp32 on CPU
    assert resolve_amp_dtype("bf16", torch.device("cuda", 0)) is torch.bfloat16
    assert resolve_amp_dtype(True, torch.device("cuda", 0)) is torch.float16
    assert resolve_amp_dtype(False, torch.device("cuda", 0)) is None
    with pytest.raises(ValueError, match="bf16"):
        resolve_amp_dtype("fp8", CPU)
