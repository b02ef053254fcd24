"""Reading a checkpoint file: :func:`read_checkpoint` and the error of unusable checkpoints.

:func:`read_checkpoint` reads a file weights-only (:mod:`opentad.utils.safe_load`:
a file that would need to unpickle other objects is refused, never loaded
silently) and checks that it holds a dict. Finding the weights in it and
loading them into a model is :mod:`opentad.utils.checkpoint`'s, which
re-exports these names.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from opentad.utils.safe_load import torch_load

__all__ = ["CheckpointError", "read_checkpoint"]


class CheckpointError(RuntimeError):
    """A checkpoint that does not match the model (strict load) or cannot be read."""


def read_checkpoint(
    path: str, *, map_location: Any = "cpu", what: str = "checkpoint", trust_pickle: bool = False
) -> Dict[str, Any]:
    """Read a checkpoint file weights-only (never running code stored in it).

    Args:
        path: the file.
        map_location: where tensors go.
        what: what the file is for (``"--resume checkpoint"``), named in messages.
        trust_pickle: full unpickling, for a trusted legacy file only (see
            :func:`opentad.utils.safe_load.torch_load`); no command line sets it.

    Raises:
        FileNotFoundError: no file at ``path``.
        UntrustedFileError: the file holds Python objects beyond tensors and plain values.
        UnreadableFileError: empty, truncated, text, or not a ``torch.save`` file.
        CheckpointError: the file is not a dict.
    """
    checkpoint = torch_load(path, map_location=map_location, what=what, trust_pickle=trust_pickle)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{what} {path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    return dict(checkpoint)
