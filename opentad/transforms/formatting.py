"""Pipeline plumbing: composing, tensors, packing, reshaping.

A pipeline step is a callable ``results -> results`` on a plain ``dict`` (the
"results" dict a dataset fills with ``video_name``, ``data_path``, ``fps``,
``gt_segments``, ...). :class:`Compose` chains steps built from configs;
:class:`Collect` ends a pipeline and returns the sample layout described in
``docs/architecture.md`` (``inputs``, ``masks``, ``gt_segments``,
``gt_labels``, ``metas``).

The shape-changing steps here (:class:`Rearrange`, :class:`Reduce`,
:class:`Interpolate`) also run inside the backbone wrapper on batched
tensors (its pre/post-processing pipelines), so they work on any key and any
leading dimensions.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence as SequenceABC
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, reduce

from opentad.registry import TRANSFORMS, build

logger = logging.getLogger(__name__)

__all__ = [
    "to_tensor",
    "Compose",
    "ConvertToTensor",
    "Collect",
    "Rearrange",
    "Reduce",
    "Interpolate",
    "require_key",
    "DEFAULT_META_KEYS",
]

#: the metas :class:`Collect` keeps by default (upstream's list).
DEFAULT_META_KEYS: Tuple[str, ...] = (
    "video_name",
    "data_path",
    "fps",
    "duration",
    "snippet_stride",
    "window_start_frame",
    "resize_length",
    "window_size",
    "offset_frames",
)


def to_tensor(data: Any) -> torch.Tensor:
    """Turn an array, a sequence or a number into a tensor.

    ``np.ndarray`` keeps its dtype (no copy); a Python ``int`` becomes a
    ``LongTensor [1]`` and a ``float`` a ``FloatTensor [1]``; a tensor is
    returned as is.

    Raises:
        TypeError: any other type (the message names it).
    """
    if isinstance(data, torch.Tensor):
        return data
    if isinstance(data, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(data))
    if isinstance(data, (bool, np.bool_)):
        return torch.tensor([bool(data)])
    if isinstance(data, (int, np.integer)):
        return torch.tensor([int(data)], dtype=torch.long)
    if isinstance(data, (float, np.floating)):
        return torch.tensor([float(data)], dtype=torch.float32)
    if isinstance(data, SequenceABC) and not isinstance(data, str):
        return torch.tensor(data)
    raise TypeError(
        f"Cannot convert {type(data).__name__} to a tensor; expected a Tensor, np.ndarray, sequence, int or float."
    )


class Compose:
    """Apply transforms one after the other.

    Args:
        transforms: each item is a transform config (a dict with ``type``,
            built from :data:`TRANSFORMS`) or an already-built callable.

    ``__call__(results)`` returns the last transform's output, or ``None`` as
    soon as a transform returns ``None`` (a sample a transform chose to drop).

    Raises:
        TypeError: an item is neither a mapping nor a callable.
    """

    def __init__(self, transforms: Sequence[Union[Mapping[str, Any], Callable]]):
        self.transforms: List[Callable] = []
        for i, item in enumerate(transforms):
            if isinstance(item, Mapping):
                self.transforms.append(build(item, TRANSFORMS))
            elif callable(item):
                self.transforms.append(item)
            else:
                raise TypeError(f"Compose: item {i} must be a transform config dict or a callable, got {item!r}")

    def __call__(self, results: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        for transform in self.transforms:
            results = transform(results)
            if results is None:
                return None
        return results

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        body = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"{type(self).__name__}([{body}\n])"


@TRANSFORMS.register_module()
class ConvertToTensor:
    """Convert ``results[key]`` to a tensor for each key (see :func:`to_tensor`).

    Reads and writes ``keys``; numpy dtypes are kept (float32 stays float32,
    int64 stays int64, uint8 frames stay uint8).

    Args:
        keys: the keys to convert.

    Raises:
        KeyError: a key is missing (the message lists the keys present).
    """

    def __init__(self, *, keys: Sequence[str]):
        self.keys = list(keys)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        for key in self.keys:
            require_key(results, key, self)
            results[key] = to_tensor(results[key])
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={self.keys})"


@TRANSFORMS.register_module()
class Collect:
    """Final step: pack a sample as ``{"inputs", *keys, "metas"}``.

    Reads ``inputs`` (a tensor, e.g. features ``[C, T]`` or frames
    ``[N, C, T, H, W]``), each of ``keys`` and whichever of ``meta_keys`` are
    present. When ``"masks"`` is asked for but absent, it is all-True
    ``BoolTensor [inputs.shape[-1]]``. ``metas`` is omitted when
    ``meta_keys`` is empty.

    Args:
        inputs: the key holding the model input.
        keys: further keys copied as they are (``masks``, ``gt_segments``, ``gt_labels``).
        meta_keys: keys gathered into ``metas`` when present.

    Raises:
        KeyError: ``inputs`` or a key in ``keys`` (other than ``masks``) is missing.
    """

    def __init__(
        self,
        *,
        inputs: str,
        keys: Sequence[str] = (),
        meta_keys: Sequence[str] = DEFAULT_META_KEYS,
    ):
        self.inputs = inputs
        self.keys = list(keys)
        self.meta_keys = list(meta_keys)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        require_key(results, self.inputs, self)
        data: Dict[str, Any] = {"inputs": results[self.inputs]}
        for key in self.keys:
            if key == "masks" and key not in results:
                results["masks"] = torch.ones(data["inputs"].shape[-1], dtype=torch.bool)
            require_key(results, key, self)
            data[key] = results[key]
        if self.meta_keys:
            data["metas"] = {k: results[k] for k in self.meta_keys if k in results}
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(inputs={self.inputs!r}, keys={self.keys}, meta_keys={self.meta_keys})"


@TRANSFORMS.register_module()
class Rearrange:
    """``einops.rearrange`` each of ``keys`` with pattern ``ops``.

    Example: ``Rearrange(keys=["feats"], ops="t c -> c t")`` turns features
    ``[T, C]`` into ``[C, T]``. Extra keyword arguments are einops axis
    lengths (``t1=48``).

    Args:
        keys: keys holding arrays or tensors.
        ops: the einops pattern.
        **axes_lengths: named axis sizes for the pattern.
    """

    def __init__(self, *, keys: Sequence[str], ops: str, **axes_lengths: int):
        self.keys = list(keys)
        self.ops = ops
        self.axes_lengths = dict(axes_lengths)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        for key in self.keys:
            require_key(results, key, self)
            results[key] = rearrange(results[key], self.ops, **self.axes_lengths)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={self.keys}, ops={self.ops!r}, axes_lengths={self.axes_lengths})"


@TRANSFORMS.register_module()
class Reduce:
    """``einops.reduce`` each of ``keys`` with pattern ``ops`` and ``reduction``.

    Example: ``Reduce(keys=["feats"], ops="b n c t h w -> b c t",
    reduction="mean")`` pools backbone features to ``[B, C, T]``.

    Args:
        keys: keys holding arrays or tensors.
        ops: the einops pattern.
        reduction: ``"mean"``, ``"max"``, ``"min"``, ``"sum"`` or ``"prod"``.
    """

    def __init__(self, *, keys: Sequence[str], ops: str, reduction: str):
        self.keys = list(keys)
        self.ops = ops
        self.reduction = reduction

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        for key in self.keys:
            require_key(results, key, self)
            results[key] = reduce(results[key], self.ops, reduction=self.reduction)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={self.keys}, ops={self.ops!r}, reduction={self.reduction!r})"


@TRANSFORMS.register_module()
class Interpolate:
    """Resize the trailing dims of batched tensors with ``F.interpolate``.

    ``results[key]`` is ``[B, C, *S]``; it becomes ``[B, C, *size]`` (as
    upstream: ``align_corners=False`` for the linear modes). A tensor whose
    trailing dims already equal ``size`` is left untouched.

    Args:
        keys: keys holding float tensors ``[B, C, *S]``.
        size: the target ``S`` (an int for ``[B, C, T]`` inputs).
        mode: ``F.interpolate`` mode (``"linear"``, ``"trilinear"``, ``"nearest"``, ...).
    """

    _ALIGNABLE = ("linear", "bilinear", "bicubic", "trilinear")

    def __init__(self, *, keys: Sequence[str], size: Union[int, Sequence[int]] = 128, mode: str = "linear"):
        self.keys = list(keys)
        self.size = (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
        self.mode = mode

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        align = False if self.mode in self._ALIGNABLE else None
        for key in self.keys:
            require_key(results, key, self)
            x = results[key]
            if tuple(x.shape[2:]) != self.size:
                results[key] = F.interpolate(x, size=self.size, mode=self.mode, align_corners=align)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={self.keys}, size={self.size}, mode={self.mode!r})"


def require_key(results: Mapping[str, Any], key: str, transform: Any) -> None:
    """Raise a KeyError naming the transform, the key and the keys present.

    Raises:
        KeyError: ``key`` is not in ``results``.
    """
    if key not in results:
        raise KeyError(
            f"{type(transform).__name__}: key {key!r} not in results "
            f"(video {results.get('video_name')!r}); present keys: {sorted(results)}"
        )
