"""Cross-rank consistency of a DDP run: identical trainable weights, untouched quantized bytes.

Under DDP every rank holds its own copy of the model; gradients are
all-reduced, so after every step the trainable weights of all ranks must be
bit for bit the same. A rank that drifts (a parameter DDP does not see, a
rank-dependent code path, an optimizer state loaded on one rank only) trains
a different model without any error. For QLoRA models each rank also holds
its own quantized base (packed 4-/8-bit bytes and their statistics, which DDP
does not broadcast); those bytes are frozen and must not change during
training.

:class:`ConsistencyChecker` checks both at the end of every epoch (the runner
calls it before writing ``last.pth``): each rank fingerprints its trainable
parameters and quantized layers, the fingerprints are all-gathered, and
every rank reaches the same verdict, logged as a ``[Consistency]`` line and a JSON record
(:mod:`opentad.cores.run_log`) or raised as :class:`ConsistencyError` naming
the tensors that differ.

A fingerprint is a checksum of a tensor's raw bytes (dtype, shape, byte sum
and a position-weighted byte sum), computed in int64 where the tensor lives:
integer sums do not depend on the summation order, so the same bytes give
the same fingerprint on any device. A change of any single byte always
changes it; it is a checksum, not a cryptographic hash.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from opentad.cores.distributed import gather_objects
from opentad.cores.run_log import RunMetrics, format_line
from opentad.models.utils.qlora import quantized_tensors
from opentad.utils.misc import count_parameters, unwrap_model

__all__ = [
    "CONSISTENCY_TAG",
    "ConsistencyError",
    "ConsistencyReport",
    "ConsistencyChecker",
    "tensor_fingerprints",
    "trainable_fingerprints",
    "quantized_fingerprints",
    "fingerprint_digest",
    "differing_names",
]

logger = logging.getLogger(__name__)

CONSISTENCY_TAG = "Consistency"
_MODULUS = 65521  # position weights cycle through 1..65521 (Adler-32's prime)
_CHUNK_BYTES = 1 << 24  # bytes summed at a time: bounds the int64 temporaries to 128 MiB

Fingerprint = Tuple[str, Tuple[int, ...], int, int]


class ConsistencyError(RuntimeError):
    """Ranks hold different trainable weights, or quantized bytes changed; the message names the tensors."""


def _byte_sums(tensor: torch.Tensor) -> torch.Tensor:
    """int64 ``[2]`` on the tensor's device: sum of the bytes, and sum of byte * ((position mod 65521) + 1)."""
    flat = tensor.detach().contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    raw = flat.view(torch.uint8)
    sums = torch.zeros(2, dtype=torch.int64, device=raw.device)
    for start in range(0, raw.numel(), _CHUNK_BYTES):
        chunk = raw[start:start + _CHUNK_BYTES].to(torch.int64)
        weights = torch.arange(start, start + chunk.numel(), dtype=torch.int64, device=raw.device) % _MODULUS + 1
        sums += torch.stack([chunk.sum(), (chunk * weights).sum()])
    return sums


def tensor_fingerprints(tensors: Mapping[str, torch.Tensor]) -> Dict[str, Fingerprint]:
    """``{name: (dtype, shape, byte sum, weighted byte sum)}`` of each tensor (one host copy per device).

    Args:
        tensors: any dtypes, shapes and devices.
    """
    sums: Dict[str, torch.Tensor] = {name: _byte_sums(t) for name, t in tensors.items()}
    by_device: Dict[torch.device, List[str]] = {}
    for name, value in sums.items():
        by_device.setdefault(value.device, []).append(name)
    host: Dict[str, List[int]] = {}
    for names in by_device.values():
        values = torch.stack([sums[n] for n in names]).cpu().tolist()
        host.update(zip(names, values))
    return {
        name: (str(t.dtype).replace("torch.", ""), tuple(t.shape), int(host[name][0]), int(host[name][1]))
        for name, t in tensors.items()
    }


def trainable_fingerprints(model: nn.Module) -> Dict[str, Fingerprint]:
    """Fingerprints of the parameters that require gradients (names without DDP's ``module.``)."""
    inner = unwrap_model(model)
    return tensor_fingerprints({n: p for n, p in inner.named_parameters() if p.requires_grad})


def quantized_fingerprints(model: nn.Module) -> Dict[str, Fingerprint]:
    """Fingerprints of every quantized layer's packed bytes and statistics (``{layer}.{key}``), the tensors
    QLoRA checkpoints save (:func:`~opentad.models.utils.qlora.quantized_tensors`); empty without quantized layers."""
    return tensor_fingerprints(quantized_tensors(unwrap_model(model)))


def fingerprint_digest(fingerprints: Mapping[str, Fingerprint]) -> str:
    """A short hex digest (16 characters) of a fingerprint dict, the same for the same names and bytes."""
    text = repr(sorted(fingerprints.items()))
    return hashlib.sha256(text.encode("utf8")).hexdigest()[:16]


def differing_names(per_rank: Sequence[Mapping[str, Fingerprint]]) -> Dict[str, List[int]]:
    """``{name: ranks whose fingerprint differs from rank 0's}``, sorted by name.

    A missing name counts as a differing fingerprint; when rank 0 lacks a name, rank 0 is listed
    with the ranks that have it.
    """
    names = sorted(set().union(*[set(r) for r in per_rank]))
    out = {}
    for name in names:
        reference = per_rank[0].get(name)
        ranks = [rank for rank, fps in enumerate(per_rank) if fps.get(name) != reference]
        if reference is None:
            ranks = [0] + ranks
        if ranks:
            out[name] = sorted(set(ranks))
    return out


def _named_list(names: Mapping[str, List[int]], limit: int = 20) -> str:
    items = [f"{n} (ranks {r})" for n, r in names.items()]
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


@dataclass
class ConsistencyReport:
    """The verdict of one check (identical on every rank).

    Attributes:
        tag: ``"epoch"`` (end of an epoch) or ``"resume"`` (right after loading a checkpoint).
        epoch: the epoch just trained (or the checkpoint's epoch).
        world_size: number of ranks compared.
        trainable_tensors, trainable_values: how many trainable parameters / values were compared.
        trainable_digest: digest of rank 0's trainable fingerprints.
        quantized_layers: quantized layers of the model (0 without QLoRA).
        quantized_digest: digest of rank 0's quantized fingerprints ("" without quantized layers).
        mismatched: ``{tensor: ranks differing from rank 0}`` (trainable or quantized).
        changed: ``{quantized tensor: ranks where it differs from the reference}`` (taken when the
            model was built, or when a checkpoint was loaded).
    """

    tag: str
    epoch: int
    world_size: int
    trainable_tensors: int
    trainable_values: int
    trainable_digest: str
    quantized_layers: int
    quantized_digest: str
    mismatched: Dict[str, List[int]] = field(default_factory=dict)
    changed: Dict[str, List[int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.changed

    def record(self) -> Dict[str, Any]:
        """The ``[Consistency]`` line's key/values."""
        return dict(
            tag=self.tag, epoch=self.epoch, world_size=self.world_size, ranks_agree=not self.mismatched,
            quantized_unchanged=not self.changed, trainable_tensors=self.trainable_tensors,
            trainable_values=self.trainable_values, trainable_digest=self.trainable_digest,
            quantized_layers=self.quantized_layers, quantized_digest=self.quantized_digest or None,
        )

    def message(self) -> str:
        parts = []
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} tensor(s) differ between ranks: {_named_list(self.mismatched)}")
        if self.changed:
            parts.append(
                f"{len(self.changed)} quantized tensor(s) changed during training: {_named_list(self.changed)}"
            )
        where = f"{self.tag}, epoch {self.epoch}, {self.world_size} ranks"
        return f"Consistency check ({where}) failed: " + "; ".join(parts)


class ConsistencyChecker:
    """Checks, at the end of each epoch, that all ranks agree and the quantized bytes are untouched.

    Every rank must call :meth:`check` / :meth:`rebase` at the same point (each does one all-gather).

    Args:
        model: the built model (DDP-wrapped or not); its quantized bytes now are the reference.
        raise_on_failure: raise :class:`ConsistencyError` when a check fails (else log an error only).
        metrics: where the ``consistency`` records go (besides the ``[Consistency]`` log lines).
    """

    def __init__(self, model: nn.Module, *, raise_on_failure: bool = True,
                 metrics: Optional[RunMetrics] = None) -> None:
        self.raise_on_failure = raise_on_failure
        self.metrics = metrics or RunMetrics(None)
        self.built = quantized_fingerprints(model)
        self.reference = dict(self.built)
        if self.built:  # this rank's bytes; the first check compares the ranks
            record = dict(tag="build", quantized_layers=self.quantized_layers,
                          quantized_digest=fingerprint_digest(self.built))
            logger.info(format_line(CONSISTENCY_TAG, record))
            self.metrics.write("consistency", **record)

    @property
    def quantized_layers(self) -> int:
        return len({name.rsplit(".", 1)[0] for name in self.built if name.endswith(".weight")})

    def check(self, model: nn.Module, *, epoch: int, tag: str = "epoch") -> ConsistencyReport:
        """Gather every rank's fingerprints, compare, log one ``[Consistency]`` line (rank 0).

        Args:
            model: the model being trained.
            epoch: the epoch just trained (for the log).
            tag: ``"epoch"`` or ``"resume"`` (for the log).

        Returns:
            The report (the same on every rank).

        Raises:
            ConsistencyError: trainable or quantized tensors differ between ranks, or quantized
                tensors differ from the reference (only with ``raise_on_failure``).
        """
        trainable = trainable_fingerprints(model)
        quantized = quantized_fingerprints(model) if self.reference else {}
        changed = sorted(n for n in set(self.reference) | set(quantized) if self.reference.get(n) != quantized.get(n))
        gathered = gather_objects(dict(trainable=trainable, quantized=quantized, changed=changed))
        mismatched = differing_names([g["trainable"] for g in gathered])
        mismatched.update(differing_names([g["quantized"] for g in gathered]))
        changed_on: Dict[str, List[int]] = {}
        for rank, g in enumerate(gathered):
            for name in g["changed"]:
                changed_on.setdefault(name, []).append(rank)
        report = ConsistencyReport(
            tag=tag, epoch=epoch, world_size=len(gathered), trainable_tensors=len(trainable),
            trainable_values=count_parameters(model).trainable,
            trainable_digest=fingerprint_digest(trainable), quantized_layers=self.quantized_layers,
            quantized_digest=fingerprint_digest(quantized) if quantized else "",
            mismatched=dict(sorted(mismatched.items())), changed=dict(sorted(changed_on.items())),
        )
        line = format_line(CONSISTENCY_TAG, report.record())
        self.metrics.write("consistency", **report.record())
        if report.ok:
            logger.info(line)
            return report
        logger.error(line)
        if self.raise_on_failure:
            raise ConsistencyError(report.message())
        logger.error(report.message())
        return report

    def rebase(self, model: nn.Module, *, epoch: int) -> ConsistencyReport:
        """After loading a checkpoint: its quantized bytes become the reference, then :meth:`check` (tag ``resume``).

        Logs whether the loaded quantized bytes equal those the model was built with
        (they do when the run rebuilt the same base: same seed or same pretrain file).
        """
        self.reference = quantized_fingerprints(model)
        if self.reference:
            same = self.reference == self.built
            logger.info("Quantized base loaded from the checkpoint is %s the one built at start-up.",
                        "identical to" if same else "different from")
        return self.check(model, epoch=epoch, tag="resume")
