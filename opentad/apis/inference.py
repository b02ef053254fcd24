"""Detect actions in video files with a trained detector, in one plain process (CPU or GPU).

:class:`Inferencer` loads a config and a checkpoint once; :meth:`Inferencer.detect`
runs one video. Nothing here is specific to a model: the config's own test
set-up is reused, so a video is processed exactly as the test split is.

1. The video is probed (PyAV): frame count, frame rate, ``duration = frames / fps``.
2. A one-video annotation file ``{"database": {name: {"subset", "duration",
   "frame", "annotations": []}}}`` is written to a temporary folder, and the
   config's ``dataset.test`` is built on it with ``test_mode=True`` (no ground
   truth is read). The test pipeline runs unchanged except that its file step
   points at the given file: ``PrepareVideoInfo`` (end to end) gets the video's
   extension and no prefix, ``LoadFeats`` (feature configs, ``features=...``)
   the feature file's format and no prefix or suffix. Sliding windows, frame
   sampling, resizing and centre crops are the config's.
3. The test engine's :func:`~opentad.cores.test_engine.predict` runs the
   windows; with a sliding-window dataset their detections are merged and
   NMS runs once over the video (:func:`merge_window_results`), as in
   ``tools/test.py``. Boundaries are in seconds.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from opentad.apis.common import (
    InferenceError,
    VideoInfo,
    check_min_frames,
    probe_video,
    resolve_device,
)
from opentad.apis.loading import load_detector
from opentad.registry import ConfigError
from opentad.utils.class_map import read_class_map
from opentad.utils.config import load_config, validate_config

logger = logging.getLogger(__name__)

__all__ = ["VideoDetections", "Inferencer", "detect_video", "filter_detections"]

#: the subset name of the one-video annotation file.
SUBSET = "inference"


@dataclasses.dataclass
class VideoDetections:
    """Detections of one video, highest score first.

    Attributes:
        video: what was probed from the file.
        detections: ``[{"segment": [start_s, end_s], "label": name, "score": p}, ...]``.
    """

    video: VideoInfo
    detections: List[Dict[str, Any]]

    def to_dict(self) -> Dict[str, Any]:
        return dict(video=self.video.to_dict(), detections=[dict(d) for d in self.detections])


def filter_detections(
    detections: Sequence[Mapping[str, Any]], *, score_thresh: float = 0.0, topk: Optional[int] = None
) -> List[Dict[str, Any]]:
    """Detections with ``score >= score_thresh``, sorted by decreasing score (stable), at most ``topk``."""
    kept = sorted((dict(d) for d in detections if d["score"] >= score_thresh), key=lambda d: -d["score"])
    return kept if topk is None else kept[: max(0, int(topk))]


def _pipeline_pointing_at(pipeline: Sequence[Mapping[str, Any]], path: str, *, features: bool) -> List[Dict[str, Any]]:
    """A copy of the test pipeline whose file step reads ``path``.

    Raises:
        InferenceError: the pipeline has no such step, or ``path`` has no extension.
    """
    step_type = "LoadFeats" if features else "PrepareVideoInfo"
    extension = os.path.splitext(path)[1].lstrip(".")
    if not extension:
        raise InferenceError(f"{path} has no file extension; name it e.g. video.mp4 or feats.npy")
    steps = [dict(copy.deepcopy(step)) for step in pipeline]
    found = False
    for step in steps:
        if step.get("type") == step_type:
            found = True
            if features:
                step.update(feat_format=extension, prefix="", suffix="")
            else:
                step.update(format=extension, prefix="")
    if not found:
        raise InferenceError(f"dataset.test.pipeline has no {step_type} step; cannot point it at {path}")
    return steps


def _feature_rows(path: str) -> Optional[int]:
    """Rows of an ``.npy`` feature file without reading it (None for other formats)."""
    if not path.endswith(".npy"):
        return None
    try:
        return int(np.load(path, mmap_mode="r").shape[0])
    except (OSError, ValueError) as exc:
        raise InferenceError(f"Cannot read features {path}: {exc}") from exc


class Inferencer:
    """A trained detector ready to run on video files.

    Args:
        config: the config file the checkpoint was trained with.
        checkpoint: the checkpoint (this project's or upstream OpenTAD's; QLoRA ones too).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or None (CUDA when available).
        class_map: class-name file; default the config's ``dataset.test.class_map``.
        cfg_options: ``{"a.b": value}`` config overrides (as ``--cfg-options``).
        use_ema: use the EMA weights; None follows ``solver.ema`` (as the test engine).
        batch_size: windows per forward; default ``solver.test.batch_size`` (else 1).
        num_workers: data loader workers.
        show_progress: draw a progress bar with ETA over the windows.

    Raises:
        FileNotFoundError: the config, checkpoint, class map or external classifier file is missing.
        ConfigError: the config is invalid or has no ``dataset.test``.
        ClassifierFileError: the ``post_processing.external_cls`` file is unusable.
        CheckpointError: the checkpoint does not fit the config (e.g. another number of classes).
        InferenceError: the class map and the head disagree on the number of classes.
    """

    def __init__(
        self,
        config: str,
        checkpoint: str,
        *,
        device: Optional[str] = None,
        class_map: Optional[str] = None,
        cfg_options: Optional[Mapping[str, Any]] = None,
        use_ema: Optional[bool] = None,
        batch_size: Optional[int] = None,
        num_workers: int = 0,
        show_progress: bool = True,
    ):
        from opentad.cores.test_engine import make_classifier

        self.config_path, self.checkpoint = config, checkpoint
        self.cfg = load_config(config, cfg_options)
        validate_config(self.cfg, source=config)
        if "dataset" not in self.cfg or "test" not in self.cfg.dataset:
            raise ConfigError(f"{config} has no dataset.test section; inference reuses the test pipeline")
        self.test_cfg: Dict[str, Any] = self.cfg.dataset.test.to_dict()
        self.solver = self.cfg.solver.to_dict() if "solver" in self.cfg else {}
        self.device = resolve_device(device)
        self.class_map = class_map or self.test_cfg.get("class_map")
        if not self.class_map:
            raise ConfigError(f"{config}: dataset.test has no class_map; give one with --class-map")
        source = "--class-map" if class_map else "dataset.test.class_map"
        self.class_names = read_class_map(self.class_map, key=source)
        ema = bool(self.solver.get("ema", False)) if use_ema is None else use_ema
        # post_processing.external_cls (proposal detectors): its file must score the video's name (its base name)
        self.classifier = make_classifier(self.cfg.post_processing.to_dict() if "post_processing" in self.cfg else None)
        self.model = load_detector(self.cfg.model.to_dict(), checkpoint, device=self.device, use_ema=ema, config=config)
        self._check_class_count()
        test_solver = self.solver.get("test", {})
        self.batch_size = int(batch_size or test_solver.get("batch_size", 1))
        self.num_workers = int(num_workers)
        self.show_progress = show_progress
        self.snippet_stride = int(self.test_cfg["feature_stride"]) * int(self.test_cfg.get("sample_stride", 1))

    @property
    def feature_based(self) -> bool:
        """True when the model has no backbone (it reads pre-extracted features)."""
        return not self.model.with_backbone

    def _check_class_count(self) -> None:
        num_classes = getattr(getattr(self.model, "rpn_head", None), "num_classes", None)
        if num_classes is not None and num_classes != len(self.class_names):
            raise InferenceError(
                f"Class map {self.class_map} names {len(self.class_names)} classes but the model predicts "
                f"{num_classes} (model.rpn_head.num_classes in {self.config_path}); they must match"
            )

    def _check_inputs(self, info: VideoInfo, features: Optional[str]) -> None:
        if self.feature_based and features is None:
            raise InferenceError(
                f"{self.config_path} is a feature-based config (no model.backbone): give the features of "
                f"{info.path} with --features FILE ([T, C], one row per {self.snippet_stride} frames)"
            )
        if not self.feature_based and features is not None:
            raise InferenceError(f"{self.config_path} reads videos end to end; --features {features} is not used by it")
        check_min_frames(info, self.snippet_stride)
        if features is None:
            return
        if not os.path.isfile(features):
            raise FileNotFoundError(f"Features file not found: {features}")
        rows = _feature_rows(features)
        if rows == 0:
            raise InferenceError(f"Features {features} have no row")
        expected = info.num_frames // int(self.test_cfg["feature_stride"])
        if rows is not None and abs(rows - expected) > max(2, 0.02 * expected):
            logger.warning(
                "%s has %d rows; %s has %d frames, i.e. %d rows at feature_stride=%s. Were the features extracted "
                "from this video at this stride?", features, rows, info.path, info.num_frames, expected,
                self.test_cfg["feature_stride"],
            )

    def _dataset(self, info: VideoInfo, data_file: str, folder: str, *, features: bool):
        from opentad.datasets import build_dataset

        name = os.path.splitext(os.path.basename(data_file))[0]
        ann_file = os.path.join(folder, "annotation.json")
        entry = dict(subset=SUBSET, duration=info.duration, frame=info.num_frames, annotations=[])
        with open(ann_file, "w", encoding="utf8") as handle:
            json.dump(dict(database={name: entry}), handle)
        cfg = dict(
            copy.deepcopy(self.test_cfg),
            ann_file=ann_file, subset_name=SUBSET, data_path=os.path.dirname(os.path.abspath(data_file)),
            class_map=self.class_map, block_list=None, test_mode=True,
            pipeline=_pipeline_pointing_at(self.test_cfg["pipeline"], data_file, features=features),
        )
        return build_dataset(cfg), name

    def _post_cfg(self, dataset) -> Dict[str, Any]:
        from opentad.datasets.base import SlidingWindowDataset

        post = copy.deepcopy(self.cfg.post_processing.to_dict()) if "post_processing" in self.cfg else {}
        post["sliding_window"] = isinstance(dataset, SlidingWindowDataset)
        return post

    def detect(
        self, video: str, *, features: Optional[str] = None, score_thresh: float = 0.0, topk: Optional[int] = None
    ) -> VideoDetections:
        """Detect actions in one video.

        Args:
            video: the video file (any length, frame rate or size FFmpeg reads).
            features: for a feature-based config, the video's features ``[T, C]``.
            score_thresh: drop detections scoring below this.
            topk: keep at most this many (highest scores).

        Returns:
            The video's :class:`VideoDetections`.

        Raises:
            FileNotFoundError: the video or features file is missing.
            VideoReadError: the video cannot be read (names the file).
            VideoTooShortError: fewer frames than one snippet.
            InferenceError: features missing for a feature config (or given to
                an end-to-end one), or unreadable.
        """
        from opentad.cores.test_engine import predict
        from opentad.cores.train_engine import resolve_amp_dtype
        from opentad.datasets import build_dataloader
        from opentad.models.utils.post_processing import merge_window_results

        info = probe_video(video)
        self._check_inputs(info, features)
        with tempfile.TemporaryDirectory(prefix="opentad_infer_") as folder:
            dataset, name = self._dataset(info, features or video, folder, features=features is not None)
            loader = build_dataloader(dataset, batch_size=self.batch_size, num_workers=self.num_workers)
            post = self._post_cfg(dataset)
            results = predict(
                loader, self.model, device=self.device,
                infer_cfg=dict(load_from_raw_predictions=False, save_raw_prediction=False), post_cfg=post,
                class_names=self.class_names, classifier=self.classifier,
                amp_dtype=resolve_amp_dtype(self.solver.get("amp", False), self.device),
                show_progress=self.show_progress,
            )
        if post["sliding_window"]:
            results = merge_window_results(results, post.get("nms"))
        detections = filter_detections(results.get(name, []), score_thresh=score_thresh, topk=topk)
        logger.info("%s: %d detections", info.path, len(detections))
        return VideoDetections(video=info, detections=detections)


def detect_video(
    config: str,
    checkpoint: str,
    video: str,
    *,
    features: Optional[str] = None,
    score_thresh: float = 0.0,
    topk: Optional[int] = None,
    **inferencer_args: Any,
) -> VideoDetections:
    """One-call inference: :class:`Inferencer` ``(config, checkpoint, **inferencer_args).detect(video, ...)``."""
    inferencer = Inferencer(config, checkpoint, **inferencer_args)
    return inferencer.detect(video, features=features, score_thresh=score_thresh, topk=topk)
