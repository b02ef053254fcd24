"""The videos a command line names: a folder, one video file, or a text file listing paths.

:func:`list_videos` reads ``--videos`` of ``tools/extract_features.py``
(:mod:`opentad.apis.features`); :data:`VIDEO_EXTENSIONS` says which files
count as videos.
"""
from __future__ import annotations

import os
from typing import List

from opentad.apis.common import InferenceError

__all__ = ["VIDEO_EXTENSIONS", "list_videos"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")


def list_videos(spec: str) -> List[str]:
    """Video files of a folder (files with a video extension, sorted, not recursive), one video file, or a list file.

    A list file is UTF-8 text with one path per line (absolute, or relative to
    the current directory); blank lines and lines starting with ``#`` are
    skipped. A file with a video extension (:data:`VIDEO_EXTENSIONS`) is taken
    as the one video to process.

    Raises:
        FileNotFoundError: ``spec`` does not exist.
        InferenceError: no video found, or a file that is neither a video nor a text list.
    """
    if os.path.isdir(spec):
        videos = sorted(
            os.path.join(spec, f) for f in os.listdir(spec) if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS
        )
    elif os.path.isfile(spec) and os.path.splitext(spec)[1].lower() in VIDEO_EXTENSIONS:
        videos = [spec]
    elif os.path.isfile(spec):
        videos = _read_list_file(spec)
    else:
        raise FileNotFoundError(f"--videos {spec}: no such folder, video or list file")
    if not videos:
        raise InferenceError(f"--videos {spec}: no video found (extensions {list(VIDEO_EXTENSIONS)})")
    return videos


def _read_list_file(spec: str) -> List[str]:
    """The paths listed in a text file, or an InferenceError saying what ``--videos`` takes."""
    try:
        with open(spec, "r", encoding="utf8") as handle:
            text = handle.read()
        binary = "\0" in text
    except UnicodeDecodeError:
        text, binary = "", True
    if binary:
        raise InferenceError(
            f"--videos {spec}: not a text file; --videos takes a folder of videos, a video file with one of "
            f"the extensions {list(VIDEO_EXTENSIONS)}, or a text file with one video path per line"
        )
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
