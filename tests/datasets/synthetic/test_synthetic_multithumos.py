"""The ``multithumos`` preset: overlapping, multi-label actions read by Multi-THUMOS' dataset bases.

Multi-THUMOS (upstream OpenTAD: ``configs/_base_/datasets/multithumos/*``)
annotates the THUMOS14 videos densely, one segment may carry several labels,
and the THUMOS datasets read it (``ThumosPaddingDataset``). The tests plan the
preset at full scale (no files), generate a tiny features-only copy once per
module, read it through ``features_i3d_pad.py`` against a reference written
here, and train a tiny ActionFormer (``configs/actionformer/multithumos_i3d.py``
shrunk) a few iterations on it.
"""
import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from opentad.datasets import build_dataset, collate
from opentad.datasets.synthetic import generate_dataset, settings_from_preset
from opentad.datasets.synthetic.plan import plan_dataset
from opentad.models import build_detector
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BASE = os.path.join(ROOT, "configs", "_base_", "datasets", "multithumos", "features_i3d_pad.py")
RECIPE = os.path.join(ROOT, "configs", "actionformer", "multithumos_i3d.py")
# 4 classes, 6 + 2 videos of 6-10 s, actions of 0.5-2 s, 16 channels: about 0.3 s to generate
TINY = dict(num_train=6, num_test=2, num_classes=4, classes_per_video=0, min_duration=6.0, max_duration=10.0,
            median_duration=8.0, median_action=1.0, min_action=0.5, max_action=2.0, feat_dim=16,
            empty_fraction=0.0, write_videos=False)


def _labels_per_action_frame(plan) -> np.ndarray:
    count = np.zeros(plan.num_frames)
    for seg in plan.segments:
        first, stop = seg.frame_range()
        count[first:stop] += 1
    return count[count > 0]


def test_second_labels_copy_a_segment_and_leave_the_first_draws_alone():
    """With ``multi_label_prob`` the plan without it is kept (same first draws) and extended by copies
    of its actions' segments under another class of the same video."""
    plain = settings_from_preset("multithumos", dict(TINY, num_train=40, multi_label_prob=0.0))
    multi = dataclasses.replace(plain, multi_label_prob=0.5)
    copies = 0
    for a, b in zip(plan_dataset(plain), plan_dataset(multi)):
        assert b.segments[: len(a.segments)] == a.segments and b.num_frames == a.num_frames
        actions = {(s.start_cs, s.end_cs): s.label for s in a.segments if not s.ambiguous}
        for extra in b.segments[len(a.segments):]:
            assert not extra.ambiguous and (extra.start_cs, extra.end_cs) in actions
            assert extra.label != actions[(extra.start_cs, extra.end_cs)]
            assert extra.label in set(actions.values()) or len(set(actions.values())) == 1
            copies += 1
    n_actions = sum(1 for p in plan_dataset(plain) for s in p.segments if not s.ambiguous)
    # Binomial(n_actions, 0.5): more than 6 standard deviations from the mean is out
    assert abs(copies - n_actions / 2) < 6 * np.sqrt(n_actions / 4), (copies, n_actions)
    with pytest.raises(ValueError, match="multi_label_prob"):
        dataclasses.replace(multi, num_classes=1)


def test_multithumos_preset_has_its_density():
    """Multi-THUMOS: 413 videos, 30 h, 38,690 actions (about 21.5 a minute), about 1.5 labels per annotated
    frame and 10.5 classes per video; no Ambiguous label. The plan of 60 of the preset's videos (seed 0)
    within loose bounds."""
    settings = settings_from_preset("multithumos")
    assert (settings.num_train, settings.num_test, settings.ambiguous_prob) == (200, 213, 0.0)
    plans = plan_dataset(dataclasses.replace(settings, num_train=60, num_test=0))
    minutes = sum(p.duration for p in plans) / 60
    segments = [s for p in plans for s in p.segments]
    assert not any(s.ambiguous for s in segments)
    assert 18 <= len(segments) / minutes <= 25
    labels = np.concatenate([_labels_per_action_frame(p) for p in plans if p.segments])
    assert 1.3 <= labels.mean() <= 1.7 and labels.max() >= 3
    classes = [len({s.label for s in p.segments}) for p in plans if p.segments]
    assert 9 <= np.mean(classes) <= 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny multi-label dataset on disk and its annotation database."""
    out = str(tmp_path_factory.mktemp("multithumos_synthetic"))
    settings = settings_from_preset("multithumos", dict(TINY, multi_label_prob=0.5, overlap_prob=0.8))
    generate_dataset(settings, out)
    with open(os.path.join(out, "annotations", "thumos_14_anno.json"), encoding="utf8") as f:
        database = json.load(f)["database"]
    return dict(out=out, database=database, classes=list(settings.class_names))


def _config(tiny):
    """Multi-THUMOS' feature base pointed at the tiny data (synthetic subsets: validation trains, test evaluates)."""
    cfg = load_config(BASE)
    paths = dict(ann_file=os.path.join(tiny["out"], "annotations", "thumos_14_anno.json"),
                 class_map=os.path.join(tiny["out"], "annotations", "category_idx.txt"),
                 data_path=os.path.join(tiny["out"], "features", "stride4") + "/", block_list=None)
    for split, subset in (("train", "validation"), ("val", "test"), ("test", "test")):
        cfg.dataset[split].update(paths, subset_name=subset)
    return cfg


def _reference(info, classes, offset_frames=8, stride=4):
    """Ground truth of one video as Multi-THUMOS reads it: seconds -> int(t / duration * frame) -> snippets
    ``(frame - 8) / 4``; a repeated (segment, label) once, the same segment under another label kept."""
    rows = []
    for ann in info["annotations"]:
        frames = [int(t / info["duration"] * info["frame"]) for t in ann["segment"]]
        row = ((frames[0] - offset_frames) / stride, (frames[1] - offset_frames) / stride, classes.index(ann["label"]))
        if row not in rows:
            rows.append(row)
    return rows


def test_multithumos_base_reads_overlapping_multi_label_ground_truth(tiny):
    dataset = build_dataset(_config(tiny).dataset.val)
    assert type(dataset).__name__ == "ThumosPaddingDataset"
    shared = 0
    for index, (name, info, _) in enumerate(dataset.data_list):
        sample = dataset[index]
        got = [(float(s), float(e), int(k)) for (s, e), k in zip(sample["gt_segments"].tolist(),
                                                                  sample["gt_labels"].tolist())]
        assert got == _reference(info, tiny["classes"]), name
        segments = [(s, e) for s, e, _ in got]
        shared += sum(segments.count(seg) > 1 for seg in set(segments))
        rows = np.load(os.path.join(tiny["out"], "features", "stride4", f"{name}.npy"))
        assert torch.equal(sample["inputs"], torch.from_numpy(rows).T)
    assert shared > 0  # some segment carries two labels


def test_tiny_actionformer_trains_on_it(tiny):
    """Six AdamW steps on one batch of the training subset (random crops padded to 2304 snippets): every loss
    finite, and the last loss below the first (a model that cannot learn the batch would not lower it)."""
    cfg = _config(tiny)
    recipe = load_config(RECIPE)
    model_cfg = recipe.model.to_dict()
    model_cfg["projection"].update(in_channels=16, out_channels=16, attn_cfg=dict(n_head=2, n_mha_win_size=3))
    model_cfg["neck"].update(in_channels=16, out_channels=16)
    model_cfg["rpn_head"].update(num_classes=len(tiny["classes"]), in_channels=16, feat_channels=16)
    torch.manual_seed(0)
    model = build_detector(model_cfg)
    model.train()
    dataset = build_dataset(cfg.dataset.train)
    batch = collate([dataset[0], dataset[1]])
    assert batch["inputs"].shape == (2, 16, 2304)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        out = model(**batch, return_loss=True)
        out["cost"].backward()
        optimizer.step()
        losses.append(float(out["cost"].detach()))
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
