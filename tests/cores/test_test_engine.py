"""eval_one_epoch / predict: padding repeats dropped, sliding windows merged, evaluation on in-memory results."""
import json

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from opentad.cores.test_engine import eval_one_epoch, make_classifier, merge_results, predict
from opentad.datasets import collate
from opentad.datasets.base import SlidingWindowDataset
from opentad.models.detectors.base import BaseDetector
from opentad.registry import ConfigError

CPU = torch.device("cpu")


class ToyVideos(Dataset):
    """Sample i is video ``v{i // windows}``; its input encodes the segment the toy detector will output."""

    def __init__(self, n, windows=1):
        self.n, self.windows = n, windows
        self.class_map = ["Run", "Jump"]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        video = i // self.windows
        return dict(inputs=torch.tensor([float(video), float(video) + 1.0]), masks=torch.ones(2, dtype=torch.bool),
                    metas=dict(video_name=f"v{video}", index=i))


class SlidingToy(SlidingWindowDataset):
    def __init__(self, n, windows):  # noqa: D107 - no annotation file: only the type matters to the engine
        self.toy = ToyVideos(n, windows)
        self.class_map = self.toy.class_map

    def __len__(self):
        return len(self.toy)

    def __getitem__(self, i):
        return self.toy[i]


class EchoDetector(nn.Module):
    """Outputs one detection per sample: the segment written in its input, class 0, score 0.9."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, inputs, masks, metas, return_loss=True, infer_cfg=None, post_cfg=None, ext_cls=None):
        assert not return_loss and "sliding_window" in post_cfg and "folder" in infer_cfg
        out = {}
        for x, meta in zip(inputs, metas):
            self.seen.append(meta["index"])
            out.setdefault(meta["video_name"], []).append(
                dict(segment=[round(x[0].item(), 2), round(x[1].item(), 2)], label=ext_cls[0], score=0.9))
        return out


def test_predict_drops_distributed_sampler_repeats():
    dataset = ToyVideos(5)
    sampler = DistributedSampler(dataset, num_replicas=2, rank=1, shuffle=False)  # rank 1: 1, 3 and a repeat of 0
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=collate)
    model = EchoDetector()
    results = predict(loader, model, device=CPU, infer_cfg={"folder": "x"}, post_cfg={"sliding_window": False},
                      class_names=dataset.class_map, show_progress=False)
    assert model.seen == [1, 3]
    assert sorted(results) == ["v1", "v3"]


def test_merge_results_concatenates_in_order():
    merged = merge_results([{"a": [1], "b": [2]}, {"a": [3]}])
    assert merged == {"a": [1, 3], "b": [2]}


def write_annotations(path, videos):
    database = {
        f"v{i}": dict(subset="test", duration=10.0, frame=300,
                      annotations=[dict(label="Run", segment=[float(i), float(i) + 1.0])])
        for i in range(videos)
    }
    path.write_text(json.dumps(dict(database=database)))
    return str(path)


def test_eval_one_epoch_evaluates_and_saves(tmp_path):
    dataset = ToyVideos(3)
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate)
    evaluation = dict(type="mAP", subset="test", tiou_thresholds=[0.5, 0.7],
                      ground_truth_filename=write_annotations(tmp_path / "gt.json", 3))
    post = dict(nms=None, save_dict=True)
    metrics = eval_one_epoch(loader, EchoDetector(), device=CPU, inference_cfg={}, post_cfg=post,
                             evaluation_cfg=evaluation, work_dir=str(tmp_path))
    assert metrics["mAP@0.5"] == pytest.approx(1.0) and metrics["average_mAP"] == pytest.approx(1.0)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["event"] == "eval" and records[0]["epoch"] is None
    assert records[0]["num_videos"] == 3 and records[0]["mAP@0.5"] == pytest.approx(1.0)
    saved = json.loads((tmp_path / "result_detection.json").read_text())
    assert sorted(saved["results"]) == ["v0", "v1", "v2"]
    assert post == dict(nms=None, save_dict=True)  # the caller's config is not modified
    assert eval_one_epoch(loader, EchoDetector(), device=CPU, inference_cfg={}, post_cfg=post,
                          evaluation_cfg=evaluation, work_dir=str(tmp_path), not_eval=True) is None


def test_sliding_windows_are_merged_with_one_nms_per_video(tmp_path):
    dataset = SlidingToy(6, windows=3)  # videos v0, v1, each seen by 3 windows that detect the same segment
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate)
    post = dict(nms=dict(use_soft_nms=False, iou_threshold=0.5, max_seg_num=10, multiclass=True), save_dict=True)
    eval_one_epoch(loader, EchoDetector(), device=CPU, inference_cfg={}, post_cfg=post, evaluation_cfg=None,
                   work_dir=str(tmp_path))
    results = json.loads((tmp_path / "result_detection.json").read_text())["results"]
    assert {k: len(v) for k, v in results.items()} == {"v0": 1, "v1": 1}
    assert results["v1"][0]["segment"] == [1.0, 2.0] and results["v1"][0]["label"] == "Run"


def test_evaluation_checks_ground_truth_labels_against_the_test_class_map(tmp_path):
    """A ground-truth label the model cannot predict is an error, not a class with AP 0 (issue #16)."""
    path = tmp_path / "gt.json"
    write_annotations(path, 3)
    database = json.loads(path.read_text())
    database["database"]["v2"]["annotations"].append(dict(label="Swim", segment=[5.0, 6.0]))  # not in the class map
    path.write_text(json.dumps(database))
    loader = DataLoader(ToyVideos(3), batch_size=2, collate_fn=collate)
    evaluation = dict(type="mAP", subset="test", tiou_thresholds=[0.5], ground_truth_filename=str(path))
    with pytest.raises(ValueError, match=r"1 ground-truth segment\(s\) of 1 video\(s\).*\['Swim'\].*'v2'"):
        eval_one_epoch(loader, EchoDetector(), device=CPU, inference_cfg={}, post_cfg={}, evaluation_cfg=evaluation,
                       work_dir=str(tmp_path))
    # a class map set in the evaluation section wins over the dataset's
    metrics = eval_one_epoch(loader, EchoDetector(), device=CPU, inference_cfg={}, post_cfg={},
                             evaluation_cfg=dict(evaluation, class_map=["Run", "Jump", "Swim"]), work_dir=str(tmp_path))
    assert metrics["per_class_AP"]["Swim"]["average"] == 0.0 and metrics["mAP@0.5"] == pytest.approx(0.5)


class ProposalToy(BaseDetector):
    """A class-agnostic proposal detector: one proposal per sample, the segment in its input, score 0.5."""

    def forward_test(self, inputs, masks, metas=None, infer_cfg=None):
        return [x[None, :] for x in inputs], [torch.full((1, 1), 0.5) for _ in inputs]


class Samples(list):
    """Ready-made samples with the dataset's ``class_map``."""

    class_map = ["Run", "Jump"]


def test_external_classifier_labels_class_agnostic_proposals(tmp_path):
    """post_processing.external_cls is built from the config and re-labels each video's proposals.

    v0 acts "Jump", v1 "Run"; the file ranks them so (topk=1): both classes found, mAP 1. Scores are
    sqrt(0.5 * 0.5) = 0.5 (exact). Without the classifier every proposal is class 0 ("Run"): Jump's AP is 0.
    """
    database = {f"v{i}": dict(subset="test", duration=10.0, frame=300,
                              annotations=[dict(label=label, segment=[float(i), float(i) + 1.0])])
                for i, label in enumerate(["Jump", "Run"])}
    (tmp_path / "gt.json").write_text(json.dumps(dict(database=database)))
    scores = {"v0": [0.25, 0.5], "v1": [0.5, 0.125]}
    (tmp_path / "cls.json").write_text(json.dumps({"class": ["Run", "Jump"], "results": scores}))
    loader = DataLoader(Samples(
        dict(inputs=torch.tensor([float(i), float(i) + 1.0]), masks=torch.ones(2, dtype=torch.bool),
             metas=dict(video_name=f"v{i}", fps=1.0, duration=10.0, snippet_stride=1, offset_frames=0))
        for i in range(2)), batch_size=2, collate_fn=collate)
    evaluation = dict(type="mAP", subset="test", tiou_thresholds=[0.5], ground_truth_filename=str(tmp_path / "gt.json"))
    post = dict(nms=None, save_dict=True,
                external_cls=dict(type="StandardClassifier", path=str(tmp_path / "cls.json"), topk=1))
    metrics = eval_one_epoch(loader, ProposalToy(), device=CPU, inference_cfg={}, post_cfg=post,
                             evaluation_cfg=evaluation, work_dir=str(tmp_path))
    assert metrics["mAP@0.5"] == 1.0
    saved = json.loads((tmp_path / "result_detection.json").read_text())["results"]
    assert saved == {"v0": [dict(segment=[0.0, 1.0], label="Jump", score=0.5)],
                     "v1": [dict(segment=[1.0, 2.0], label="Run", score=0.5)]}
    plain = eval_one_epoch(loader, ProposalToy(), device=CPU, inference_cfg={}, post_cfg=dict(nms=None),
                           evaluation_cfg=evaluation, work_dir=str(tmp_path))
    assert plain["per_class_AP"]["Jump"]["average"] == 0.0 and plain["mAP@0.5"] < 1.0


def test_external_classifier_problems_stop_before_inference(tmp_path):
    assert make_classifier(None) is None and make_classifier(dict(external_cls=None)) is None
    with pytest.raises(FileNotFoundError, match="nope.json"):
        make_classifier(dict(external_cls=dict(type="StandardClassifier", path=str(tmp_path / "nope.json"))))
    with pytest.raises(ConfigError, match="Unknown external classifier type 'StandardClasifier'"):
        make_classifier(dict(external_cls=dict(type="StandardClasifier", path="x")))
    with pytest.raises(ConfigError, match="expected a dict with 'type' or None"):
        make_classifier(dict(external_cls="StandardClassifier"))
