"""Inference on single videos (opentad.apis.inference) against the test engine and the planted ground truth.

* A feature model trained in the session (conftest) finds the actions planted
  in the synthetic test videos: recall at tIoU 0.5 among each video's top 10
  detections >= RECALL_FLOOR (counted by a loop written here), and mAP@0.5 of
  all its detections >= MAP50_FLOOR (the project's evaluator).
* For the feature model and for the end-to-end AdaTAD config, the detections
  of :class:`Inferencer` equal those ``tools/test.py`` writes for the same
  videos (``post_processing.save_dict``): same pipeline, windows, merging.
* Bad input fails with an error naming the file or value.
"""
import json
import os

import av
import numpy as np
import pytest

from opentad.apis import Inferencer, InferenceError, VideoTooShortError
from opentad.cores.runner import test as run_test
from opentad.datasets.video_reader import VideoReadError
from opentad.evaluations import mAP
from opentad.utils.checkpoint import CheckpointError

RECALL_FLOOR = 0.8  # measured 1.0: the 3 planted actions of the 3 test videos are all found
MAP50_FLOOR = 0.7  # measured 1.0 with the project's evaluator on all detections


def tiou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def planted(tiny_data, name):
    with open(tiny_data.ann, encoding="utf8") as handle:
        annotations = json.load(handle)["database"][name]["annotations"]
    return [a for a in annotations if a["label"] != "Ambiguous"]


def engine_detections(config, checkpoint, work_dir):
    """Detections of the config's test split by the test engine, one window per batch."""
    run_test([config, "--checkpoint", checkpoint, "--not_eval", "--cfg-options", f"work_dir={work_dir}",
              "solver.test.batch_size=1", "post_processing.save_dict=True"])
    with open(os.path.join(work_dir, "gpu1_id0", "result_detection.json"), encoding="utf8") as handle:
        return json.load(handle)["results"]


def test_trained_feature_model_finds_planted_actions(tiny_data, trained_feature_model):
    inferencer = Inferencer(trained_feature_model.config, trained_feature_model.checkpoint, device="cpu",
                            show_progress=False)
    found = total = 0
    everything = {}
    for name in tiny_data.test_videos:
        video = os.path.join(tiny_data.videos, f"{name}.mp4")
        result = inferencer.detect(video, features=os.path.join(tiny_data.features, f"{name}.npy"))
        everything[name], top = result.detections, result.detections[:10]
        assert all(0.0 <= d["segment"][0] <= d["segment"][1] <= result.video.duration for d in top)
        for gt in planted(tiny_data, name):
            total += 1
            found += any(d["label"] == gt["label"] and tiou(d["segment"], gt["segment"]) >= 0.5 for d in top)
    assert total > 0
    assert found / total >= RECALL_FLOOR, f"recall@0.5 (top 10) {found}/{total}"
    evaluator = mAP(ground_truth_filename=tiny_data.ann, prediction_filename=dict(results=everything), subset="test",
                    tiou_thresholds=[0.5])
    assert evaluator.evaluate()["mAP@0.5"] >= MAP50_FLOOR


def test_feature_inference_equals_test_engine(tiny_data, trained_feature_model, tmp_path):
    expected = engine_detections(trained_feature_model.config, trained_feature_model.checkpoint, str(tmp_path))
    inferencer = Inferencer(trained_feature_model.config, trained_feature_model.checkpoint, device="cpu",
                            batch_size=1, show_progress=False)
    for name in tiny_data.test_videos:
        got = inferencer.detect(os.path.join(tiny_data.videos, f"{name}.mp4"),
                                features=os.path.join(tiny_data.features, f"{name}.npy"))
        assert got.detections == sorted(expected[name], key=lambda d: -d["score"])


@pytest.mark.slow
def test_end_to_end_inference_equals_test_engine(tiny_data, e2e_config, e2e_checkpoint, tmp_path):
    expected = engine_detections(e2e_config, e2e_checkpoint, str(tmp_path))
    inferencer = Inferencer(e2e_config, e2e_checkpoint, device="cpu", batch_size=1, show_progress=False)
    assert not inferencer.feature_based
    for name in tiny_data.test_videos:
        got = inferencer.detect(os.path.join(tiny_data.videos, f"{name}.mp4"))
        assert got.video.fps == pytest.approx(30.0) and got.video.num_frames == round(got.video.duration * 30)
        assert got.detections and got.detections == sorted(expected[name], key=lambda d: -d["score"])


def test_score_threshold_and_topk(tiny_data, e2e_config, e2e_checkpoint):
    inferencer = Inferencer(e2e_config, e2e_checkpoint, device="cpu", show_progress=False)
    video = os.path.join(tiny_data.videos, f"{tiny_data.test_videos[0]}.mp4")
    everything = inferencer.detect(video).detections
    cut = float(np.median([d["score"] for d in everything]))
    assert inferencer.detect(video, score_thresh=cut).detections == [d for d in everything if d["score"] >= cut]
    assert inferencer.detect(video, topk=3).detections == everything[:3]


def write_video(path, frames, fps=25, size=(48, 32)):
    """A small mpeg4 video of ``frames`` grey frames."""
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 10 * i % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_bad_videos_are_named(e2e_config, e2e_checkpoint, tmp_path):
    inferencer = Inferencer(e2e_config, e2e_checkpoint, device="cpu", show_progress=False)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(2000))
    with pytest.raises(VideoReadError, match="broken.mp4"):
        inferencer.detect(str(broken))
    short = write_video(str(tmp_path / "short.mp4"), frames=2)
    with pytest.raises(VideoTooShortError, match=r"short\.mp4 has 2 frame\(s\).*one snippet of 4 frames"):
        inferencer.detect(short)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        inferencer.detect(str(tmp_path / "missing.mp4"))


def test_other_frame_rate_and_size_run_end_to_end(e2e_config, e2e_checkpoint, tmp_path):
    video = write_video(str(tmp_path / "odd.mkv"), frames=53, fps=25, size=(120, 80))
    result = Inferencer(e2e_config, e2e_checkpoint, device="cpu", show_progress=False).detect(video)
    assert (result.video.num_frames, result.video.fps, result.video.width) == (53, 25.0, 120)
    assert result.video.duration == pytest.approx(53 / 25)
    assert all(0.0 <= d["segment"][0] <= d["segment"][1] <= 53 / 25 for d in result.detections)


def test_checkpoint_for_other_number_of_classes_is_refused(trained_feature_model):
    with pytest.raises(CheckpointError, match=r"trained for 2 classes.*num_classes=3"):
        Inferencer(trained_feature_model.config, trained_feature_model.checkpoint, device="cpu",
                   cfg_options={"model.rpn_head.num_classes": 3})


def test_class_map_of_other_length_is_refused(trained_feature_model, tmp_path):
    names = tmp_path / "three.txt"
    names.write_text("a\nb\nc\n")
    with pytest.raises(InferenceError, match=r"three.txt names 3 classes but the model predicts 2"):
        Inferencer(trained_feature_model.config, trained_feature_model.checkpoint, device="cpu", class_map=str(names))


def test_features_required_by_feature_configs_only(tiny_data, trained_feature_model, e2e_config, e2e_checkpoint):
    name = tiny_data.test_videos[0]
    video, feats = os.path.join(tiny_data.videos, f"{name}.mp4"), os.path.join(tiny_data.features, f"{name}.npy")
    features_model = Inferencer(trained_feature_model.config, trained_feature_model.checkpoint, device="cpu")
    with pytest.raises(InferenceError, match="feature-based config.*--features"):
        features_model.detect(video)
    with pytest.raises(InferenceError, match="end to end"):
        Inferencer(e2e_config, e2e_checkpoint, device="cpu").detect(video, features=feats)


@pytest.mark.slow
def test_qlora_checkpoint_detects_and_float_checkpoint_is_refused(tiny_data, e2e_checkpoint, qlora_model):
    inferencer = Inferencer(qlora_model.config, qlora_model.checkpoint, device="cpu", cfg_options=qlora_model.options,
                            show_progress=False)
    video = os.path.join(tiny_data.videos, f"{tiny_data.test_videos[0]}.mp4")
    result = inferencer.detect(video, topk=5)
    assert 0 < len(result.detections) <= 5
    assert {d["label"] for d in result.detections} <= set(inferencer.class_names)
    with pytest.raises(CheckpointError, match=r"adapter.pth.*quantization"):
        Inferencer(qlora_model.config, e2e_checkpoint, device="cpu", cfg_options=qlora_model.options)


def test_external_classifier_relabels_detections(tiny_data, trained_feature_model, tmp_path):
    """post_processing.external_cls reaches the detector: PseudoClassifier renames every detection, nothing else."""
    name = tiny_data.test_videos[0]
    video, feats = os.path.join(tiny_data.videos, f"{name}.mp4"), os.path.join(tiny_data.features, f"{name}.npy")
    plain = Inferencer(trained_feature_model.config, trained_feature_model.checkpoint, device="cpu",
                       show_progress=False).detect(video, features=feats).detections
    pseudo = dict(type="PseudoClassifier", pseudo_label="action")
    relabelled = Inferencer(trained_feature_model.config, trained_feature_model.checkpoint, device="cpu",
                            show_progress=False, cfg_options={"post_processing.external_cls": pseudo})
    assert plain and relabelled.detect(video, features=feats).detections == [dict(d, label="action") for d in plain]
    missing = dict(type="StandardClassifier", path=str(tmp_path / "scores.json"))
    with pytest.raises(FileNotFoundError, match="External classifier file not found: .*scores.json"):
        Inferencer(trained_feature_model.config, trained_feature_model.checkpoint, device="cpu",
                   cfg_options={"post_processing.external_cls": missing})
