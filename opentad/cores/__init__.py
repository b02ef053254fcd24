"""Training and testing engines, optimizer / scheduler builders, and the run launchers.

Importing this package registers the schedulers in ``SCHEDULERS`` and, in
``CONFIG_SECTIONS``, the checkers of the ``optimizer``, ``scheduler``,
``solver``, ``workflow``, ``inference`` and ``post_processing`` config sections
(the registry imports this package when :func:`opentad.utils.config.check_config` asks for them).
"""
from opentad.cores import sections  # noqa: F401  (registers the section checkers)
from opentad.cores.optimizer import build_optimizer
from opentad.cores.scheduler import LinearWarmupCosineAnnealingLR, LinearWarmupMultiStepLR, build_scheduler
from opentad.cores.test_engine import eval_one_epoch
from opentad.cores.train_engine import NonFiniteLossError, train_one_epoch, val_one_epoch

__all__ = [
    "build_optimizer",
    "build_scheduler",
    "LinearWarmupCosineAnnealingLR",
    "LinearWarmupMultiStepLR",
    "train_one_epoch",
    "val_one_epoch",
    "eval_one_epoch",
    "NonFiniteLossError",
]
