"""The pretraining's optimisation: the throw-away classification head, the losses, the learning-rate
schedule, the training loop and the held-out accuracy.

Used by :func:`opentad.apis.synthetic_pretrain.pretrain_vit`.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opentad.apis.synthetic_pretrain_clips import to_input
from opentad.apis.synthetic_pretrain_settings import PretrainSettings
from opentad.datasets.synthetic.clips import IGNORE, ClipSampler, token_labels, tubelet_labels


logger = logging.getLogger(__name__)

__all__ = ["PretrainHead", "train_loop", "held_out_accuracy"]


class PretrainHead(nn.Module):
    """Two classifiers on ``[B, C, t, h, w]`` features (thrown away after pretraining).

    Returns per-tubelet logits ``[B, t, K + 1]`` (of the spatial mean, what
    the detector sees) and per-token logits ``[B, t, h, w, K + 1]`` (which
    action's objects a token shows: a dense signal that trains much faster
    than the tubelet labels alone).
    """

    def __init__(self, channels: int, num_outputs: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.fc = nn.Linear(channels, num_outputs)
        self.token_norm = nn.LayerNorm(channels)
        self.token_fc = nn.Linear(channels, num_outputs)

    def forward(self, feats: Tensor) -> Tuple[Tensor, Tensor]:
        pooled = self.fc(self.norm(feats.mean((3, 4)).transpose(1, 2)))
        tokens = self.token_fc(self.token_norm(feats.permute(0, 2, 3, 4, 1)))
        return pooled, tokens


def _loss(logits: Tensor, target: np.ndarray) -> Tensor:
    """Cross-entropy of ``[..., K + 1]`` logits against int ``[...]`` labels, :data:`IGNORE` left out."""
    flat = torch.from_numpy(target).reshape(-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat, ignore_index=IGNORE)


def _lr_factor(step: int, settings: PretrainSettings) -> float:
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def held_out_accuracy(
    vit: nn.Module, head: nn.Module, sampler: ClipSampler, mean: Tensor, std: Tensor, tubelet: int
) -> float:
    """Share of labelled tubelets of the held-out windows classified right."""
    vit.eval()
    right = total = 0
    for frames, labels, _ in sampler.windows():
        pred = head(vit(to_input(frames[None], mean, std)))[0][0].argmax(-1).numpy()
        target = tubelet_labels(labels, tubelet)
        keep = target != IGNORE
        right += int((pred[keep] == target[keep]).sum())
        total += int(keep.sum())
    vit.train()
    return right / max(total, 1)


def train_loop(
    vit: nn.Module,
    head: nn.Module,
    train: ClipSampler,
    settings: PretrainSettings,
    *,
    normalise,
    tubelet: int,
    progress: bool,
) -> None:
    """The optimisation loop: ``settings.steps`` AdamW steps on batches of ``train``, logged ten times."""
    params = list(vit.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, settings))
    start = time.perf_counter()
    steps = range(settings.steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="pretraining ViT", unit="step", mininterval=2.0)
    for step in steps:
        frames, labels, cover = train.sample(settings.batch_size)
        pooled, tokens = head(vit(normalise(frames)))
        loss = _loss(pooled, tubelet_labels(labels, tubelet))
        if settings.token_weight:
            loss = loss + settings.token_weight * _loss(tokens, token_labels(cover, tubelet, settings.token_threshold))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        if progress and step % 20 == 0:
            steps.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % max(1, settings.steps // 10) == 0:
            elapsed = time.perf_counter() - start
            logger.info("pretraining step %d/%d: loss %.4f, %.0f s elapsed", step + 1, settings.steps, loss.item(), elapsed)
