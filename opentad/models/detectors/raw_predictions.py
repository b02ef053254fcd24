"""Raw (pre-post-processing) predictions on disk, as upstream's ``inference`` options.

``inference.save_raw_prediction=True`` writes, per video, ``<folder>/<video_name>.pkl``
holding the list of that sample's fields of ``forward_test``'s result (one-stage:
``[proposals [P, 2], scores [P, C]]``; two-stage: the first- and second-stage
fields, None where a stage returned none);
``inference.load_from_raw_predictions=True`` reads them back instead of
running the network (to tune post-processing quickly), averaging the scores
and proposals of the folders in ``inference.fuse_list`` when it is given.
"""
from __future__ import annotations

import os
import pickle
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import torch

from opentad.utils.safe_load import pickle_load

__all__ = ["save_predictions", "load_predictions"]

Predictions = Tuple[Optional[List[torch.Tensor]], ...]


def _path(folder: str, meta: Mapping[str, Any]) -> str:
    return os.path.join(folder, f"{meta['video_name']}.pkl")


def _take(data: Any, idx: int) -> Any:
    """Sample ``idx`` of one field: a tuple is a group of batch-first fields, None stays None."""
    if data is None:
        return None
    if isinstance(data, tuple):
        return tuple(_take(part, idx) for part in data)
    return data[idx].detach().cpu()


def _mean(entries: List[Any]) -> Any:
    """The mean over runs of one sample's field (element-wise through tuples)."""
    first = entries[0]
    if first is None:
        return None
    if isinstance(first, tuple):
        return tuple(_mean([e[i] for e in entries]) for i in range(len(first)))
    return torch.stack(entries).mean(dim=0) if len(entries) > 1 else first


def _collate(samples: List[Any]) -> Any:
    """One field over the batch again: a batch tensor when every sample's shape agrees, else a list."""
    first = samples[0]
    if first is None:
        return None
    if isinstance(first, tuple):
        return tuple(_collate([s[i] for s in samples]) for i in range(len(first)))
    if all(s.shape == first.shape for s in samples):
        return torch.stack(samples)
    return list(samples)


def save_predictions(predictions: Predictions, metas: Sequence[Mapping[str, Any]], folder: str) -> None:
    """Write each sample's fields (moved to the CPU) to ``folder``, upstream's per-video layout.

    A field is a batch tensor or a list over the batch (its ``idx``-th entry is the sample's), a tuple of
    such fields (TSI's four boundary logits), or None.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"inference.folder {folder!r} does not exist; create it before saving predictions")
    for idx, meta in enumerate(metas):
        sample = [_take(data, idx) for data in predictions]
        with open(_path(folder, meta), "wb") as handle:
            pickle.dump(sample, handle, pickle.HIGHEST_PROTOCOL)


def _load_folder(metas: Sequence[Mapping[str, Any]], folder: str) -> List[List[Any]]:
    samples = []
    for meta in metas:
        path = _path(folder, meta)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"raw prediction {path} not found (inference.load_from_raw_predictions=True)")
        samples.append(pickle_load(path, what="raw prediction"))  # tensors and plain values only
    return samples


def load_predictions(metas: Sequence[Mapping[str, Any]], infer_cfg: Mapping[str, Any]) -> Predictions:
    """Read the predictions of ``metas`` from ``infer_cfg["folder"]`` or average ``infer_cfg["fuse_list"]``.

    Returns:
        Every field over the batch: a batch tensor where the samples' shapes agree (as ``forward_test`` returns
        the two-stage map outputs), else a per-sample list (one-stage proposals); tuples and None as saved.
        With ``fuse_list``, each tensor is the mean over the folders.

    Raises:
        KeyError: neither ``folder`` nor ``fuse_list`` is set.
        FileNotFoundError: a prediction file is missing.
    """
    if "fuse_list" in infer_cfg:
        folders = list(infer_cfg["fuse_list"])
    elif "folder" in infer_cfg:
        folders = [infer_cfg["folder"]]
    else:
        raise KeyError("inference config needs 'folder' or 'fuse_list' to load raw predictions")
    loaded = [_load_folder(metas, folder) for folder in folders]
    fields = len(loaded[0][0])
    samples = [[_mean([run[i][f] for run in loaded]) for f in range(fields)] for i in range(len(metas))]
    return tuple(_collate([sample[f] for sample in samples]) for f in range(fields))
