"""Lazy access to the optional compiled ops (built from ``csrc/`` by ``setup.py``).

Every op has a pure-PyTorch fallback with the same results; the wrappers
(NMS, 1D RoI align, boundary max pooling) ask :func:`select_op` for the
compiled module at their first call. Importing a compiled module registers
its kernels as ``torch.ops.opentad.<kernel>`` (through ``torch.library``),
which is how the wrappers call them. ``backend`` is one of

* ``"auto"``: the compiled op when it is built, else the fallback;
* ``"compiled"``: the compiled op, or an :class:`ImportError` saying how to build it;
* ``"torch"``: always the fallback.

``python -m opentad.ops`` lists which ops are compiled and which fall back.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Dict, List, Optional, Tuple

from .specs import BUILD_HINT, OP_SPECS, OpSpec

__all__ = [
    "BACKENDS",
    "BUILD_HINT",
    "OP_SPECS",
    "OpSpec",
    "check_backend",
    "clear_cache",
    "load_op",
    "op_status",
    "select_device_op",
    "select_op",
]

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "compiled", "torch")
_SPECS: Dict[str, OpSpec] = {spec.name: spec for spec in OP_SPECS}
# name -> (module or None, reason it is missing)
_CACHE: Dict[str, Tuple[Optional[ModuleType], str]] = {}


def check_backend(backend: str) -> str:
    """Return ``backend`` if valid.

    Raises:
        ValueError: not one of :data:`BACKENDS`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not valid; choose one of {list(BACKENDS)}")
    return backend


def _spec(name: str) -> OpSpec:
    if name not in _SPECS:
        raise KeyError(f"Unknown compiled op {name!r}; known ops: {sorted(_SPECS)}")
    return _SPECS[name]


def _try_import(name: str) -> Tuple[Optional[ModuleType], str]:
    if name not in _CACHE:
        spec = _spec(name)
        try:
            import torch  # noqa: F401 - the library links against libtorch, load it first

            module: Optional[ModuleType] = importlib.import_module(spec.module)
            reason = ""
        except (ImportError, OSError, RuntimeError) as exc:  # not built, or built against another torch
            module, reason = None, f"{type(exc).__name__}: {exc}"
        if module is None:
            logger.info("compiled op %s is not available (%s); its pure-PyTorch fallback is used", name, reason)
        _CACHE[name] = (module, reason)
    return _CACHE[name]


def load_op(name: str) -> Optional[ModuleType]:
    """The compiled module of op ``name``, imported on first use; None if it is not built.

    Raises:
        KeyError: ``name`` is not in :data:`OP_SPECS`.
    """
    return _try_import(name)[0]


def select_op(name: str, backend: str) -> Optional[ModuleType]:
    """The module the wrapper of ``name`` should use, or None for the fallback.

    Args:
        name: an op from :data:`OP_SPECS`, e.g. ``"nms_1d_cpu"``.
        backend: ``"auto"``, ``"compiled"`` or ``"torch"``.

    Raises:
        ImportError: ``backend == "compiled"`` and the op is not built; the
            message says how to build it.
        ValueError: unknown backend.
    """
    if check_backend(backend) == "torch":
        return None
    module, reason = _try_import(name)
    if module is None and backend == "compiled":
        spec = _spec(name)
        raise ImportError(
            f"backend='compiled' was requested but the compiled op {name!r} ({spec.summary}) "
            f"is not available: module {spec.module} could not be imported ({reason}). {BUILD_HINT}"
        )
    return module


def select_device_op(base: str, tensor, backend: str) -> bool:
    """Whether the compiled ``{base}_cpu`` / ``{base}_cuda`` op should run on ``tensor``.

    Args:
        base: op family, e.g. ``"align1d"``.
        tensor: an input; its device picks the CPU or CUDA build.
        backend: ``"auto"``, ``"compiled"`` or ``"torch"``.

    Raises:
        ImportError: ``backend == "compiled"`` and that build is missing, or
            the device is neither CPU nor CUDA.
    """
    device = tensor.device.type
    if device not in ("cpu", "cuda"):
        if backend == "compiled":
            raise ImportError(f"no compiled {base} op exists for device {device!r} (only cpu and cuda)")
        check_backend(backend)
        return False
    return select_op(f"{base}_{device}", backend) is not None


def op_status() -> List[Tuple[OpSpec, bool, str]]:
    """For every op: its spec, whether it is compiled, and why not."""
    return [(spec, *_status_of(spec.name)) for spec in OP_SPECS]


def _status_of(name: str) -> Tuple[bool, str]:
    module, reason = _try_import(name)
    return module is not None, reason


def clear_cache() -> None:
    """Forget what was imported (tests use it after hiding or building modules)."""
    _CACHE.clear()
