"""Researcher-facing helpers behind the tools: inference on videos, feature extraction, results tables.

* :mod:`.inference`: :class:`Inferencer` / :func:`detect_video` (``tools/infer.py``);
* :mod:`.visualization`: :func:`plot_timeline` (``tools/infer.py --plot``);
* :mod:`.features`: :class:`FeatureExtractor` / :func:`extract_features` (``tools/extract_features.py``);
* :mod:`.video_list`: :func:`list_videos` (``--videos`` of ``tools/extract_features.py``);
* :mod:`.results`: :func:`summarize_runs` / :func:`format_markdown` (``tools/summarize_results.py``).

See docs/usage.md ("Inference on your own videos", "Extracting features", "Summarizing runs").
"""
from .common import USER_ERRORS, InferenceError, VideoInfo, VideoTooShortError, probe_video
from .features import ExtractionReport, FeatureExtractor, extract_features
from .inference import Inferencer, VideoDetections, detect_video, filter_detections
from .results import RunSummary, format_markdown, summarize_runs
from .video_list import list_videos
from .visualization import plot_timeline

__all__ = [
    "USER_ERRORS",
    "InferenceError",
    "VideoInfo",
    "VideoTooShortError",
    "probe_video",
    "ExtractionReport",
    "FeatureExtractor",
    "extract_features",
    "list_videos",
    "Inferencer",
    "VideoDetections",
    "detect_video",
    "filter_detections",
    "RunSummary",
    "format_markdown",
    "summarize_runs",
    "plot_timeline",
]
