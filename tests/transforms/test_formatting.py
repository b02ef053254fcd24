import numpy as np
import pytest
import torch

from opentad.registry import ConfigError
from opentad.transforms import DEFAULT_META_KEYS, Collect, Compose, ConvertToTensor, Interpolate, Rearrange, Reduce
from opentad.transforms import to_tensor


def test_to_tensor_keeps_dtypes():
    assert to_tensor(np.zeros((2, 3), np.float32)).dtype == torch.float32
    assert to_tensor(np.zeros(4, np.int64)).dtype == torch.int64
    assert to_tensor(np.zeros((1, 2), np.uint8)).dtype == torch.uint8
    assert to_tensor(3).tolist() == [3] and to_tensor(3).dtype == torch.int64
    assert to_tensor(2.5).tolist() == [2.5] and to_tensor(2.5).dtype == torch.float32
    assert to_tensor([[1, 2], [3, 4]]).shape == (2, 2)
    t = torch.ones(2)
    assert to_tensor(t) is t
    with pytest.raises(TypeError, match="str"):
        to_tensor("abc")


def test_to_tensor_handles_non_contiguous_arrays():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    assert torch.equal(to_tensor(a), torch.tensor([[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]]))


def test_convert_to_tensor_names_missing_key():
    t = ConvertToTensor(keys=["feats", "gt_labels"])
    out = t({"feats": np.ones((5, 2), np.float32), "gt_labels": np.array([1, 2])})
    assert isinstance(out["feats"], torch.Tensor) and out["gt_labels"].dtype == torch.int64
    with pytest.raises(KeyError, match="gt_labels"):
        t({"feats": np.ones((5, 2), np.float32), "video_name": "v"})
    assert "feats" in repr(t)


def test_collect_layout_default_masks_and_metas():
    results = {
        "feats": torch.zeros(7, 11),
        "gt_segments": torch.tensor([[1.0, 2.0]]),
        "gt_labels": torch.tensor([3]),
        "video_name": "v1",
        "fps": 30.0,
        "duration": 12.0,
        "unrelated": 1,
    }
    out = Collect(inputs="feats", keys=["masks", "gt_segments", "gt_labels"])(results)
    assert set(out) == {"inputs", "masks", "gt_segments", "gt_labels", "metas"}
    assert out["inputs"] is results["feats"]
    assert out["masks"].dtype == torch.bool and out["masks"].shape == (11,) and bool(out["masks"].all())
    assert out["metas"] == {"video_name": "v1", "fps": 30.0, "duration": 12.0}
    assert "snippet_stride" in DEFAULT_META_KEYS and "unrelated" not in DEFAULT_META_KEYS


def test_collect_keeps_given_masks_and_empty_meta_keys_drops_metas():
    masks = torch.tensor([True, False])
    out = Collect(inputs="x", keys=["masks"], meta_keys=[])({"x": torch.zeros(3, 2), "masks": masks})
    assert out["masks"] is masks and "metas" not in out


def test_collect_missing_key_error():
    with pytest.raises(KeyError, match="gt_labels"):
        Collect(inputs="x", keys=["gt_labels"])({"x": torch.zeros(2)})


def test_rearrange_and_reduce_match_manual_ops():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    out = Rearrange(keys=["a"], ops="t c h -> c (t h)")({"a": x.clone()})["a"]
    assert torch.equal(out, x.permute(1, 0, 2).reshape(3, 8))
    y = torch.arange(2 * 6, dtype=torch.float32).reshape(2, 6)
    out = Rearrange(keys=["a"], ops="b (t1 t) -> (b t1) t", t1=3)({"a": y})["a"]
    assert out.shape == (6, 2) and out[1].tolist() == [2.0, 3.0]
    red = Reduce(keys=["a"], ops="b c t h w -> b c t", reduction="mean")({"a": torch.ones(1, 2, 3, 4, 5) * 2})["a"]
    assert red.shape == (1, 2, 3) and torch.allclose(red, torch.full((1, 2, 3), 2.0))
    z = torch.randn(2, 3, 5)
    assert torch.allclose(Reduce(keys=["a"], ops="b c t -> b t", reduction="max")({"a": z})["a"], z.max(1).values)


def test_interpolate_linear_hand_worked_and_identity():
    x = torch.tensor([[[0.0, 1.0, 2.0, 3.0]]])  # [1, 1, 4]
    out = Interpolate(keys=["f"], size=2)({"f": x})["f"]
    # half-pixel centres: output i samples input position (i + 0.5) * 2 - 0.5 = 0.5, 2.5
    assert torch.allclose(out, torch.tensor([[[0.5, 2.5]]]))
    same = {"f": x}
    assert Interpolate(keys=["f"], size=4)(same)["f"] is x
    vol = Interpolate(keys=["f"], size=(6, 3, 3), mode="trilinear")({"f": torch.ones(2, 4, 3, 2, 2)})["f"]
    assert vol.shape == (2, 4, 6, 3, 3)
    near = Interpolate(keys=["f"], size=8, mode="nearest")({"f": x})["f"]
    assert near[0, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_compose_builds_configs_and_callables_and_stops_on_none():
    seen = []

    def record(results):
        seen.append(dict(results))
        return results

    pipe = Compose([dict(type="ConvertToTensor", keys=["a"]), record])
    out = pipe({"a": [1, 2]})
    assert torch.equal(out["a"], torch.tensor([1, 2])) and len(seen) == 1
    assert "ConvertToTensor" in repr(pipe) and len(pipe) == 2
    dropping = Compose([lambda r: None, record])
    assert dropping({"a": 1}) is None and len(seen) == 1
    with pytest.raises(TypeError, match="item 0"):
        Compose([3])
    with pytest.raises(ConfigError, match="keyz"):
        Compose([dict(type="ConvertToTensor", keyz=["a"])])
