"""Focal loss on softmax probabilities (AFSD's ``FocalLoss_Ori``)."""
from __future__ import annotations

import torch
import torch.nn as nn

from opentad.models.losses.reduction import reduce_loss

__all__ = ["SoftmaxFocalLoss"]


class SoftmaxFocalLoss(nn.Module):
    """``-alpha_y (1 - p_y)^gamma log p_y`` of each row's target class ``y``, with ``p_y = prob[y] + eps``.

    Upstream's ``FocalLoss_Ori`` with a scalar ``alpha``: class ``balance_index`` (the background)
    is weighted ``alpha``, every other class ``1 - alpha``. The inputs are probabilities (the
    caller applies the softmax), not logits, unlike :class:`~opentad.models.losses.FocalLoss`.

    Args:
        num_classes: ``C``.
        alpha: weight of class ``balance_index``, in ``(0, 1)``.
        gamma: focusing exponent.
        balance_index: the class weighted ``alpha``.
        eps: added to the target probability before the log (upstream's 1e-6).

    Raises:
        ValueError: ``alpha`` outside ``(0, 1)`` or ``balance_index`` outside ``[0, C)``.
    """

    def __init__(
        self, *, num_classes: int, alpha: float = 0.25, gamma: float = 2.0, balance_index: int = 0, eps: float = 1e-6
    ):
        super().__init__()
        if not 0 < alpha < 1 or not 0 <= balance_index < num_classes:
            raise ValueError(
                f"SoftmaxFocalLoss: need 0 < alpha < 1 and 0 <= balance_index < {num_classes}, "
                f"got alpha={alpha}, balance_index={balance_index}"
            )
        self.num_classes = num_classes
        self.alpha = alpha
        self.gamma = gamma
        self.balance_index = balance_index
        self.eps = eps

    def class_weights(self, device: torch.device) -> torch.Tensor:
        """``[C]``: ``1 - alpha`` everywhere, ``alpha`` at ``balance_index``."""
        weights = torch.ones(self.num_classes, device=device) * (1 - self.alpha)
        weights[self.balance_index] = self.alpha
        return weights

    def forward(self, probs: torch.Tensor, targets: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        """Loss of probabilities ``probs [N, C]`` against class indices ``targets [N]`` (or ``[N, 1]``).

        Returns:
            ``[N]`` with ``reduction="none"``, else the sum (upstream's ``size_average=False``) or mean.
        """
        targets = targets.reshape(-1, 1)
        pt = probs.gather(1, targets).view(-1) + self.eps
        log_pt = self.class_weights(probs.device).gather(0, targets.view(-1)) * pt.log()
        loss = -1 * torch.pow(torch.sub(1.0, pt), self.gamma) * log_pt
        return reduce_loss(loss, reduction)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha}, gamma={self.gamma}"
