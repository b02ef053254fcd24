"""Feature-level transforms: loading pre-extracted features, padding, resizing, channel slices.

Features travel as ``results["feats"]``, ``[T, C]`` (time first) unless a
transform says otherwise; ``LoadFeats`` writes a float32 numpy array,
``ConvertToTensor`` makes it a tensor.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Sequence, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from opentad.registry import TRANSFORMS
from opentad.transforms.formatting import require_key, to_tensor
from opentad.utils.safe_load import pickle_load, torch_load

logger = logging.getLogger(__name__)

__all__ = ["LoadFeats", "Padding", "ChannelReduction", "ResizeFeat"]


_FEAT_FORMATS = ("npy", "npz", "pt", "csv", "pkl")


def _read_feats(path: str, feat_format: str) -> np.ndarray:
    if feat_format == "npy":
        return np.load(path)
    if feat_format == "npz":
        return np.load(path)["feats"]
    if feat_format == "pt":
        return torch_load(path, what="feature file").float().numpy()
    if feat_format == "csv":
        return pd.read_csv(path, dtype="float32").to_numpy()
    return np.asarray(pickle_load(path, what="feature file"))  # pkl: arrays and plain values only


@TRANSFORMS.register_module()
class LoadFeats:
    """Load pre-extracted features ``data_path/{prefix}{video_name}{suffix}.{feat_format}``.

    Reads ``video_name``, ``data_path`` (a folder, or a list of folders whose
    features are concatenated along channels after linearly resizing each to
    the longest ``T``) and ``sample_stride`` (default 1: keep every row);
    writes ``feats``: ``float32`` ``np.ndarray [T, C]``. An ``npz`` file
    holds its array under key ``feats``.

    Args:
        feat_format: one of npy, npz, pt, csv, pkl; or one per folder.
        prefix: prepended to the video name.
        suffix: appended to the video name.

    Raises:
        ValueError: an unknown format (lists the valid ones).
        FileNotFoundError: a feature file is missing (names the video and path).
        RuntimeError: a file exists but cannot be read (names the video and path).
    """

    def __init__(self, *, feat_format: Union[str, Sequence[str]], prefix: str = "", suffix: str = ""):
        formats = [feat_format] if isinstance(feat_format, str) else list(feat_format)
        for fmt in formats:
            if fmt not in _FEAT_FORMATS:
                raise ValueError(f"LoadFeats: unknown feat_format {fmt!r}; valid: {list(_FEAT_FORMATS)}")
        self.feat_format = feat_format
        self.prefix = prefix
        self.suffix = suffix

    def _load(self, folder: str, video_name: str, feat_format: str) -> np.ndarray:
        path = os.path.join(folder, f"{self.prefix}{video_name}{self.suffix}.{feat_format}")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Features of video {video_name!r} not found: {path}")
        try:
            return np.asarray(_read_feats(path, feat_format), dtype=np.float32)
        except Exception as exc:  # any reader failure is reported with the file
            raise RuntimeError(f"Cannot read features of video {video_name!r} from {path}: {exc}") from exc

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        require_key(results, "video_name", self)
        require_key(results, "data_path", self)
        name, data_path = results["video_name"], results["data_path"]
        if isinstance(data_path, str):
            if not isinstance(self.feat_format, str):
                raise ValueError(f"LoadFeats: one data_path but feat_format={self.feat_format!r}")
            feats = self._load(data_path, name, self.feat_format)
        else:
            formats = [self.feat_format] * len(data_path) if isinstance(self.feat_format, str) else self.feat_format
            if len(formats) != len(data_path):
                raise ValueError(f"LoadFeats: {len(data_path)} data paths but {len(formats)} feat formats")
            feats = _concat_channels([self._load(p, name, f) for p, f in zip(data_path, formats)])
        stride = int(results.get("sample_stride", 1))
        results["feats"] = feats[::stride] if stride > 1 else feats
        return results

    def __repr__(self) -> str:
        fmt = self.feat_format
        return f"{type(self).__name__}(feat_format={fmt!r}, prefix={self.prefix!r}, suffix={self.suffix!r})"


def _concat_channels(feats: List[np.ndarray]) -> np.ndarray:
    """Resize each ``[T_i, C_i]`` to the longest ``T`` (linear) and concatenate channels."""
    max_len = max(f.shape[0] for f in feats)
    out = []
    for f in feats:
        if f.shape[0] != max_len:
            t = torch.from_numpy(f).t()[None]  # [1, C, T]
            f = F.interpolate(t, size=max_len, mode="linear", align_corners=False)[0].t().numpy()
        out.append(f)
    return np.concatenate(out, axis=1)


@TRANSFORMS.register_module()
class Padding:
    """Pad features ``feats`` to a fixed length, or resize them down to it.

    Reads ``feats`` (float tensor ``[T, C]``, or ``[C, T]`` with
    ``channel_first``) and ``masks`` if present (``BoolTensor [T]``).

    * ``T < length``: append ``length - T`` rows of ``pad_value``; ``masks``
      becomes ``[length]`` with False on the padding.
    * ``T >= length``: linearly interpolate to ``length`` rows, set ``masks``
      all-True and scale ``snippet_stride`` and ``offset_frames`` by
      ``T / length`` so that predictions map back to the right frames.

    Args:
        length: the output length.
        pad_value: value of padded rows.
        channel_first: features are ``[C, T]`` instead of ``[T, C]``.

    Raises:
        ValueError: ``feats`` is not 2-D.
    """

    def __init__(self, *, length: int, pad_value: float = 0.0, channel_first: bool = False):
        self.length = int(length)
        self.pad_value = pad_value
        self.channel_first = channel_first

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        require_key(results, "feats", self)
        feats = results["feats"]
        if feats.ndim != 2:
            name = results.get("video_name")
            raise ValueError(f"Padding expects 2-D feats, got shape {tuple(feats.shape)} for {name}")
        feats = feats.t() if self.channel_first else feats  # [T, C]
        feat_len = feats.shape[0]
        if feat_len < self.length:
            pad = torch.full((self.length - feat_len, feats.shape[1]), self.pad_value, dtype=feats.dtype)
            new_feats = torch.cat((feats, pad), dim=0)
            valid = results["masks"] if "masks" in results else torch.ones(feat_len, dtype=torch.bool)
            results["masks"] = torch.cat((valid.bool(), torch.zeros(self.length - feat_len, dtype=torch.bool)))
        else:
            logger.debug("%s: %d feature steps resized to %d", results.get("video_name"), feat_len, self.length)
            ratio = feat_len / self.length
            results["snippet_stride"] = results["snippet_stride"] * ratio
            results["offset_frames"] = results["offset_frames"] * ratio
            new_feats = F.interpolate(feats.t()[None], size=self.length, mode="linear", align_corners=False)[0].t()
            results["masks"] = torch.ones(self.length, dtype=torch.bool)
        results["feats"] = new_feats.t() if self.channel_first else new_feats
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(length={self.length}, pad_value={self.pad_value}, "
            f"channel_first={self.channel_first})"
        )


@TRANSFORMS.register_module()
class ChannelReduction:
    """Keep the channel slice ``index[0]:index[1]`` of ``feats`` ``[T, C]``.

    Args:
        in_channels: expected ``C`` (checked).
        index: ``[start, end)`` of the channels to keep.

    Raises:
        ValueError: ``index`` is not two numbers, or ``feats`` has another ``C``.
    """

    def __init__(self, *, in_channels: int, index: Sequence[int]):
        if len(index) != 2:
            raise ValueError(f"ChannelReduction: index must be [start, end], got {index!r}")
        self.in_channels = int(in_channels)
        self.index = (int(index[0]), int(index[1]))

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        require_key(results, "feats", self)
        feats = results["feats"]
        if feats.shape[1] != self.in_channels:
            raise ValueError(
                f"ChannelReduction: {results.get('video_name')} has {feats.shape[1]} channels, "
                f"expected in_channels={self.in_channels}"
            )
        results["feats"] = feats[:, self.index[0] : self.index[1]]
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_channels={self.in_channels}, index={list(self.index)})"


def _roi_align_resize(feats: torch.Tensor, length: int) -> torch.Tensor:
    """``[C, T] -> [C, length]`` by RoIAlign over the whole sequence (upstream's ``torchvision_align``).

    As upstream, values pass through float16 before the (float64) RoIAlign.
    """
    from torchvision.ops import roi_align

    image = feats[None, :, :, None].half().double()  # [1, C, T, 1]
    box = torch.tensor([[0.0, 0.0, 0.0, 1.0, float(feats.shape[1])]]).half().double()
    out = roi_align(image, box, output_size=(length, 1), aligned=True)
    return out[0, :, :, 0].to(feats.dtype)


def _bmn_resize(feats: torch.Tensor, length: int, num_sample: int = 3) -> torch.Tensor:
    """``[C, T] -> [C, length]`` as BMN: mean of ``num_sample`` linear samples per output bin."""
    x = feats.double().numpy()
    num_t = x.shape[1]
    centres = 0.5 + np.arange(num_t)
    out = np.zeros((x.shape[0], length))
    for i in range(length):
        lo = max(centres[0] + 1e-4, i / length * num_t)
        hi = min(centres[-1] - 1e-4, (i + 1) / length * num_t)
        if hi < centres[0] or lo > centres[-1]:
            continue  # a bin outside the sampled range stays zero
        points = lo + (hi - lo) / (num_sample - 1) * np.arange(num_sample)
        pos = np.clip(points - 0.5, 0, num_t - 1)  # fractional index of each point
        left = np.floor(pos).astype(int)
        right = np.minimum(left + 1, num_t - 1)
        w = pos - left
        out[:, i] = (x[:, left] * (1 - w) + x[:, right] * w).mean(axis=1)
    return torch.from_numpy(out).to(feats.dtype)


@TRANSFORMS.register_module()
class ResizeFeat:
    """Resize features to ``resize_length`` steps and ground truth to match.

    Reads ``feats`` (tensor ``[T, C]``, or ``[C, T]`` with ``channel_first``),
    ``resize_length`` and, when present, ``gt_segments`` (seconds) and
    ``duration``; writes ``feats`` ``[resize_length, C]`` (same layout as
    read), ``gt_segments`` as ``clip(gt / duration, 0, 1) * resize_length``
    and ``feats_len_ori`` (the original ``T``).

    Args:
        tool: ``"torchvision_align"`` (RoIAlign), ``"interpolate"`` (linear,
            half-pixel centres) or ``"bmn_align"`` (BMN's sampling).
        channel_first: features are ``[C, T]``.

    Raises:
        ValueError: another tool (upstream's ``gtad_align`` was never implemented).
    """

    _TOOLS = ("torchvision_align", "interpolate", "bmn_align")

    def __init__(self, *, tool: str, channel_first: bool = False):
        if tool not in self._TOOLS:
            raise ValueError(f"ResizeFeat: unknown tool {tool!r}; valid: {list(self._TOOLS)}")
        self.tool = tool
        self.channel_first = channel_first

    @torch.no_grad()
    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        require_key(results, "feats", self)
        require_key(results, "resize_length", self)
        length = int(results["resize_length"])
        feats = to_tensor(results["feats"])
        feats = feats if self.channel_first else feats.t()  # [C, T]
        if self.tool == "torchvision_align":
            resized = _roi_align_resize(feats, length)
        elif self.tool == "interpolate":
            resized = F.interpolate(feats[None], size=length, mode="linear", align_corners=False)[0]
        else:
            resized = _bmn_resize(feats, length)
        if "gt_segments" in results:
            require_key(results, "duration", self)
            gt = to_tensor(results["gt_segments"]).float()
            results["gt_segments"] = (gt / float(results["duration"])).clamp(0.0, 1.0) * length
        results["feats_len_ori"] = int(feats.shape[1])
        results["feats"] = resized if self.channel_first else resized.t()
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tool={self.tool!r}, channel_first={self.channel_first})"
