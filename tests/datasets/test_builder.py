"""collate, build_dataloader (distributed split of a global batch) and the dataset configs."""
import json
import os

import pytest
import torch
from mmengine.config import Config

from opentad.datasets import build_dataloader, build_dataset, collate
from opentad.registry import DATASETS, check_binding

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sample(i, length=6):
    return {
        "inputs": torch.full((3, length), float(i)),
        "masks": torch.arange(length) < i,
        "gt_segments": torch.tensor([[0.0, float(i)]] * i),
        "metas": {"video_name": f"v{i}"},
    }


def test_collate_stacks_inputs_and_masks_and_lists_the_rest():
    batch = [sample(1), sample(2), sample(3)]
    out = collate(batch)
    assert out["inputs"].shape == (3, 3, 6)
    for i in range(3):
        assert torch.equal(out["inputs"][i], batch[i]["inputs"])
        assert torch.equal(out["masks"][i], batch[i]["masks"])
    assert out["masks"].dtype == torch.bool
    assert isinstance(out["gt_segments"], list) and [g.shape[0] for g in out["gt_segments"]] == [1, 2, 3]
    assert out["metas"] == [{"video_name": "v1"}, {"video_name": "v2"}, {"video_name": "v3"}]


def test_collate_errors():
    with pytest.raises(ValueError, match=r"\(3, 5\).*\(3, 6\)|\(3, 6\).*\(3, 5\)"):
        collate([sample(1), sample(2, length=5)])
    with pytest.raises(ValueError, match="keys"):
        collate([sample(1), {"inputs": torch.zeros(3, 6)}])
    with pytest.raises(TypeError):
        collate([])


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        self.items = [sample(i % 4) for i in range(n)]
        for i, item in enumerate(self.items):
            item["metas"] = {"index": i}

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def indices(loader):
    return [[m["index"] for m in batch["metas"]] for batch in loader]


def test_dataloader_splits_global_batch_across_ranks():
    ds = ListDataset(10)
    per_rank = [indices(build_dataloader(ds, batch_size=4, rank=r, world_size=2)) for r in range(2)]
    # DistributedSampler without shuffle: rank r takes indices r, r + 2, ...; 2 samples per step each
    assert per_rank[0] == [[0, 2], [4, 6], [8]]
    assert per_rank[1] == [[1, 3], [5, 7], [9]]


def test_dataloader_drop_last_and_shuffle():
    ds = ListDataset(11)
    loaders = [build_dataloader(ds, batch_size=2, rank=r, world_size=2, drop_last=True) for r in range(2)]
    kept = [sum(indices(loader), []) for loader in loaders]
    assert sorted(kept[0] + kept[1]) == list(range(10))  # the 11th sample cannot split evenly: dropped
    a = sum(indices(build_dataloader(ds, batch_size=3, shuffle=True, seed=1)), [])
    b = sum(indices(build_dataloader(ds, batch_size=3, shuffle=True, seed=1)), [])
    assert a == b and sorted(a) == list(range(11)) and a != list(range(11))


def test_dataloader_rejects_indivisible_batch():
    with pytest.raises(ValueError) as info:
        build_dataloader(ListDataset(4), batch_size=3, rank=0, world_size=2)
    assert "batch_size 3" in str(info.value) and "world_size 2" in str(info.value)
    with pytest.raises(ValueError, match="rank 2"):
        build_dataloader(ListDataset(4), batch_size=2, rank=2, world_size=2)


CONFIGS = [
    "configs/_base_/datasets/thumos-14/features_i3d_pad.py",
    "configs/_base_/datasets/thumos-14/features_i3d_sw.py",
    "configs/_base_/datasets/thumos-14/features_i3d_train_trunc_test_sw.py",
    "configs/_base_/datasets/synthetic/features_stride4_pad.py",
]


@pytest.mark.parametrize("path", CONFIGS)
def test_dataset_configs_bind_to_the_datasets(path):
    cfg = Config.fromfile(os.path.join(ROOT, path))
    for split in ("train", "val", "test"):
        section = dict(cfg.dataset[split])
        cls = DATASETS.get(section.pop("type"))
        assert cls is not None
        assert check_binding(cls, section) is None


def test_synthetic_config_builds_on_the_synthetic_layout(tmp_path):
    """The synthetic config's subsets and strides give the expected samples on a file in that layout."""
    ann = tmp_path / "thumos_14_anno.json"
    video = {"duration": 4.0, "frame": 120, "annotations": [{"label": "BaseballPitch", "segment": [1.0, 2.0]}]}
    ann.write_text(json.dumps({"database": {
        "video_validation_0000001": dict(video, subset="validation"),
        "video_test_0000001": dict(video, subset="test"),
    }}))
    (tmp_path / "category_idx.txt").write_text("BaseballPitch\nBasketballDunk\n")
    cfg = Config.fromfile(os.path.join(ROOT, CONFIGS[-1]))
    overrides = dict(ann_file=str(ann), class_map=str(tmp_path / "category_idx.txt"), pipeline=[])
    train = build_dataset(dict(cfg.dataset.train, **overrides))
    test = build_dataset(dict(cfg.dataset.test, **overrides))
    assert [e[0] for e in train.data_list] == ["video_validation_0000001"]
    assert [e[0] for e in test.data_list] == ["video_test_0000001"]
    # 30 fps, stride 4, offset 0: [30, 60] frames -> [7.5, 15] feature rows
    assert train.sample_dict(0)["gt_segments"].tolist() == [[7.5, 15.0]]
