"""Small run-level helpers: seeding, random-state snapshots, parameter counts, devices.

Random states are kept as tensors and plain Python values so a checkpoint
holding them loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import abc
import contextlib
import logging
import os
import random
from typing import Any, Dict, Iterator, Mapping, NamedTuple

import numpy as np
import torch
import torch.nn as nn

__all__ = [
    "RandomStateful",
    "module_random_states",
    "load_module_random_states",
    "set_seed",
    "get_rng_state",
    "set_rng_state",
    "preserved_rng_state",
    "unwrap_model",
    "ParameterCount",
    "count_parameters",
    "format_parameter_count",
    "format_parameter_parts",
    "move_to_device",
    "AverageMeter",
]

logger = logging.getLogger(__name__)


def set_seed(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, numpy and torch (all devices) and choose deterministic kernels.

    Args:
        seed: the seed, the same on every rank (as upstream OpenTAD).
        deterministic: use deterministic cuDNN / cuBLAS algorithms (warn-only
            where none exists); False picks the fastest (``cudnn.benchmark``).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def get_rng_state() -> Dict[str, Any]:
    """Snapshot of the Python, numpy, torch CPU (and current CUDA device) generators as tensors and plain values."""
    py_version, py_keys, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: Dict[str, Any] = {
        "python": [py_version, torch.tensor(py_keys, dtype=torch.int64), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # this process's device only: reading another rank's GPU would wait behind its collectives
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore a snapshot taken by :func:`get_rng_state`.

    Its tensors may be on any device: a checkpoint read with
    ``map_location=cuda`` holds them on the GPU, and each is copied to the
    host before it is read.

    Raises:
        KeyError: a generator's entry is missing (the message names it).
    """
    for key in ("python", "numpy", "torch"):
        if key not in state:
            raise KeyError(f"rng state has no {key!r} entry; keys: {sorted(state)}")
    py_version, py_keys, py_gauss = state["python"]
    random.setstate((int(py_version), tuple(int(k) for k in py_keys.cpu().tolist()), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np_keys = np_keys.cpu().numpy().astype(np.uint32)  # .numpy() of a GPU tensor raises TypeError
    np.random.set_state((np_name, np_keys, int(np_pos), int(np_has_gauss), float(np_gauss)))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


class RandomStateful(abc.ABC):
    """A module with a random stream of its own that a checkpoint must carry for an exact resume."""

    @abc.abstractmethod
    def random_state(self) -> Dict[str, Any]:
        """Plain values (ints, tensors) that restore the stream."""

    @abc.abstractmethod
    def load_random_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`random_state` returned."""


def module_random_states(model: nn.Module) -> Dict[str, Dict[str, Any]]:
    """``{module name: random_state()}`` of the :class:`RandomStateful` modules of ``model``."""
    return {name: m.random_state() for name, m in unwrap_model(model).named_modules() if isinstance(m, RandomStateful)}


def load_module_random_states(model: nn.Module, states: Mapping[str, Mapping[str, Any]]) -> None:
    """Restore :func:`module_random_states`.

    Raises:
        KeyError: a saved name that is not a :class:`RandomStateful` module of ``model`` (names listed).
    """
    modules = {name: m for name, m in unwrap_model(model).named_modules() if isinstance(m, RandomStateful)}
    unknown = sorted(set(states) - set(modules))
    if unknown:
        raise KeyError(f"random states saved for {unknown}, but the model's stateful modules are {sorted(modules)}")
    for name, state in states.items():
        modules[name].load_random_state(state)


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block without disturbing the random generators (e.g. evaluation inside training)."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (or ``model`` itself)."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


class _Pair(NamedTuple):
    trainable: int
    total: int


class ParameterCount(_Pair):
    """``(trainable, total)`` values (unpacks and compares as the pair) that also knows ``packed``: the values
    stored quantized, part of ``total``."""

    packed: int = 0


def count_parameters(model: nn.Module) -> ParameterCount:
    """The one parameter counter: trainable, total and packed values of ``model``, shared parameters once.

    A quantized weight counts at its logical size (a 4-bit tensor's ``quant_state.shape``, two values a byte);
    a parameter that is not floating point is quantized (packed).
    """
    trainable = total = packed = 0
    for param in unwrap_model(model).parameters():
        quant_state = getattr(param, "quant_state", None)
        n = int(torch.Size(quant_state.shape).numel()) if quant_state is not None else param.numel()
        total += n
        trainable += n if param.requires_grad else 0
        packed += 0 if param.is_floating_point() else n
    count = ParameterCount(trainable, total)
    count.packed = packed
    return count


def format_parameter_count(model: nn.Module) -> str:
    """``trainable params: N || all params: M || trainable%: P`` (peft's format)."""
    trainable, total = count_parameters(model)
    percent = 100.0 * trainable / total if total else 0.0
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {percent:.4f}"


def format_parameter_parts(model: nn.Module) -> str:
    """``trainable params by part: backbone 63,232 / 363,456 (17.40%) || projection ...``.

    One entry per top-level child of the (unwrapped) model that holds
    parameters, so that a QLoRA run shows what trains inside its backbone,
    not only a total dominated by the detection head.
    """
    parts = []
    for name, child in unwrap_model(model).named_children():
        trainable, total = count_parameters(child)
        if total:
            parts.append(f"{name} {trainable:,d} / {total:,d} ({100.0 * trainable / total:.2f}%)")
    return "trainable params by part: " + " || ".join(parts)


def move_to_device(data: Any, device: torch.device) -> Any:
    """Move every tensor in nested dicts / lists / tuples to ``device`` (other values unchanged)."""
    if isinstance(data, torch.Tensor):
        return data.to(device, non_blocking=True)
    if isinstance(data, Mapping):
        return {k: move_to_device(v, device) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(move_to_device(v, device) for v in data)
    return data


class AverageMeter:
    """Running (weighted) mean of a scalar."""

    def __init__(self) -> None:
        self.sum = 0.0
        self.count = 0
        self.val = float("nan")

    def update(self, val: float, n: int = 1) -> None:
        self.val = float(val)
        self.sum += float(val) * n
        self.count += n

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else float("nan")
