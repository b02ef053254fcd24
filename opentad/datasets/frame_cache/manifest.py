"""What a frame-cache entry is, and how a stale or incomplete one is recognised.

An entry is one video: a shard of frames (:mod:`.shards`) plus
``<video_name>.json``, the manifest, written last (atomically) so that an
entry without a manifest is one whose writing did not finish. The manifest
records:

* ``format_version``: :data:`FORMAT_VERSION`, bumped when the layout changes;
* ``video_name``, ``source``: ``{"path", "size", "mtime_ns"}`` of the video it
  was decoded from (and ``"sha256"`` when built with hashing);
* ``stride`` (every ``stride``-th frame is kept: frames ``0, s, 2s, ...``),
  ``short_side`` (None: decoded size), ``height``/``width`` of the stored
  frames, ``source_height``/``source_width``;
* ``total_frames`` (frames of the video, as the decoder counts them),
  ``num_frames`` (``ceil(total_frames / stride)`` stored), ``fps``;
* ``format`` (``"npy"`` or ``"jpeg"``), ``jpeg_quality``, and ``files``:
  ``{file name: size in bytes}`` of the shard files.

:func:`check_entry` compares a manifest with what a reader expects and with
the source video on disk; every failure is a :class:`CacheError` whose
message names the video.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

__all__ = [
    "FORMAT_VERSION",
    "FORMATS",
    "CacheError",
    "CacheSpec",
    "manifest_path",
    "source_signature",
    "file_sha256",
    "write_manifest",
    "load_manifest",
    "check_entry",
]

FORMAT_VERSION = 1
FORMATS = ("npy", "jpeg")


class CacheError(RuntimeError):
    """A frame-cache entry that is missing, incomplete or stale (the message names the video)."""


@dataclass(frozen=True)
class CacheSpec:
    """How frames are cached.

    Args:
        stride: keep frames ``0, stride, 2 * stride, ...`` (the pipeline's
            ``snippet_stride // scale_factor``).
        short_side: resize so the short side is this many pixels (as
            ``mmaction.Resize(scale=(-1, short_side))``); None keeps the decoded size.
        format: ``"npy"`` (raw uint8, exact) or ``"jpeg"``.
        jpeg_quality: JPEG quality, 1-100 (``"jpeg"`` only).

    Raises:
        ValueError: a value out of range or an unknown format.
    """

    stride: int = 4
    short_side: Optional[int] = 182
    format: str = "npy"
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if int(self.stride) < 1:
            raise ValueError(f"CacheSpec: stride must be >= 1, got {self.stride}")
        if self.short_side is not None and int(self.short_side) < 1:
            raise ValueError(f"CacheSpec: short_side must be >= 1 or None, got {self.short_side}")
        if self.format not in FORMATS:
            raise ValueError(f"CacheSpec: unknown format {self.format!r}; valid: {list(FORMATS)}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"CacheSpec: jpeg_quality must be in [1, 100], got {self.jpeg_quality}")


def manifest_path(cache_dir: str, video_name: str) -> str:
    """``<cache_dir>/<video_name>.json``."""
    return os.path.join(cache_dir, f"{video_name}.json")


def source_signature(path: str, *, with_hash: bool = False) -> Dict[str, Any]:
    """``{"path", "size", "mtime_ns"}`` of a video (plus ``"sha256"`` with ``with_hash``).

    Raises:
        FileNotFoundError: the file does not exist.
    """
    st = os.stat(path)
    signature: Dict[str, Any] = {"path": os.path.abspath(path), "size": int(st.st_size)}
    signature["mtime_ns"] = int(st.st_mtime_ns)
    if with_hash:
        signature["sha256"] = file_sha256(path)
    return signature


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(cache_dir: str, manifest: Mapping[str, Any]) -> str:
    """Write ``manifest`` as ``<video_name>.json`` atomically (temporary file, then rename); returns the path."""
    path = manifest_path(cache_dir, manifest["video_name"])
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(dict(manifest), f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def load_manifest(cache_dir: str, video_name: str) -> Dict[str, Any]:
    """Read the manifest of ``video_name``.

    Raises:
        CacheError: no manifest (not cached, or its writing did not finish) or
            an unreadable one; the message names the video and the command
            that builds the cache.
    """
    path = manifest_path(cache_dir, video_name)
    if not os.path.isfile(path):
        raise CacheError(
            f"Frame cache has no complete entry for video {video_name!r}: {path} is missing "
            f"(never cached, or caching was interrupted). Build it with tools/prepare_data/cache_frames.py."
        )
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise CacheError(f"Frame cache manifest of video {video_name!r} is unreadable ({path}): {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("video_name") != video_name:
        raise CacheError(f"Frame cache manifest {path} does not describe video {video_name!r}")
    return manifest


def check_entry(
    manifest: Mapping[str, Any],
    cache_dir: str,
    *,
    stride: Optional[int] = None,
    short_side: Any = "any",
    source_path: Optional[str] = None,
) -> None:
    """Check a cache entry against what the reader needs and against its source video.

    Args:
        manifest: from :func:`load_manifest`.
        cache_dir: the folder holding the entry's files.
        stride: the frame stride the pipeline samples at, or None to skip the check.
        short_side: the expected ``short_side`` (an int or None), or ``"any"`` to skip.
        source_path: the video file to compare size and modification time
            with (and nothing when None).

    Raises:
        CacheError: wrong format version, stride or short side; a shard file
            missing or of the wrong size; the source changed since caching.
            The message names the video.
        FileNotFoundError: ``source_path`` does not exist (names the video).
    """
    name = manifest.get("video_name")
    where = f"frame cache entry of video {name!r} in {cache_dir}"
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CacheError(
            f"Stale {where}: format version {manifest.get('format_version')}, this code reads "
            f"{FORMAT_VERSION}; rebuild it"
        )
    if stride is not None and int(manifest["stride"]) != int(stride):
        raise CacheError(
            f"Wrong stride in {where}: cached every {manifest['stride']} frames, the pipeline samples every {stride} "
            "(snippet_stride // scale_factor); rebuild the cache with --stride "
            f"{stride} or fix the config"
        )
    if short_side != "any" and manifest.get("short_side") != short_side:
        raise CacheError(
            f"Wrong resolution in {where}: cached at short side {manifest.get('short_side')}, "
            f"the config expects {short_side}"
        )
    for file_name, size in manifest["files"].items():
        path = os.path.join(cache_dir, file_name)
        if not os.path.isfile(path):
            raise CacheError(f"Incomplete {where}: shard file {path} is missing; rebuild the entry")
        if os.path.getsize(path) != int(size):
            raise CacheError(
                f"Incomplete {where}: {path} has {os.path.getsize(path)} bytes, the manifest says {size}; "
                "rebuild the entry"
            )
    if source_path is not None:
        _check_source(manifest, where, source_path)


def _check_source(manifest: Mapping[str, Any], where: str, source_path: str) -> None:
    if not os.path.isfile(source_path):
        raise FileNotFoundError(
            f"Source video of the {where} not found: {source_path} (set check_source=False to train from the "
            "cache alone)"
        )
    st = os.stat(source_path)
    recorded = manifest["source"]
    if int(st.st_size) != int(recorded["size"]) or int(st.st_mtime_ns) != int(recorded["mtime_ns"]):
        raise CacheError(
            f"Stale {where}: {source_path} changed since it was cached (size {st.st_size} vs {recorded['size']}, "
            f"mtime_ns {st.st_mtime_ns} vs {recorded['mtime_ns']}); rebuild the entry"
        )
