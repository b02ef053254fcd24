"""Frame transforms: shapes, dtypes, hand-worked geometry, same parameters on every frame, seeds."""
import cv2
import numpy as np
import pytest
import torch

from opentad.transforms import (
    CenterCrop,
    ColorJitter,
    Flip,
    FormatShape,
    ImgAug,
    RandomCrop,
    RandomResizedCrop,
    Resize,
)


def coords_clip(t=3, h=18, w=32):
    """uint8 [T, 3, H, W]: channel 0 = x, channel 1 = y, channel 2 = frame index * 10."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    frame = torch.stack([x, y, torch.zeros_like(x)])
    clip = frame.repeat(t, 1, 1, 1)
    clip[:, 2] = (torch.arange(t) * 10)[:, None, None]
    return clip.to(torch.uint8)


def random_clip(t=4, h=24, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, 3, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize(
    "scale, keep_ratio, expected_hw",
    [
        ((-1, 182), True, (182, 324)),  # short side 182: factor 182/180, w = int(320 * 1.0111 + 0.5)
        ((-1, 160), True, (160, 284)),  # 320 * 160 / 180 = 284.4
        ((160, 160), False, (160, 160)),
        ((200, 100), True, (100, 178)),  # bounds long <= 200, short <= 100 -> factor min(200/320, 100/180)
        (0.5, True, (90, 160)),
    ],
)
def test_resize_sizes(scale, keep_ratio, expected_hw):
    imgs = torch.zeros(2, 3, 180, 320, dtype=torch.uint8)
    out = Resize(scale=scale, keep_ratio=keep_ratio)({"imgs": imgs})
    assert tuple(out["imgs"].shape) == (2, 3) + expected_hw and out["imgs"].dtype == torch.uint8
    assert out["img_shape"] == expected_hw
    assert np.allclose(out["scale_factor"], [expected_hw[1] / 320, expected_hw[0] / 180])


def test_resize_bilinear_matches_opencv():
    clip = random_clip(t=2, h=30, w=40)
    out = Resize(scale=(20, 15), keep_ratio=False)({"imgs": clip})["imgs"]
    for i in range(2):
        ref = cv2.resize(clip[i].permute(1, 2, 0).numpy(), (20, 15), interpolation=cv2.INTER_LINEAR)
        diff = np.abs(out[i].permute(1, 2, 0).numpy().astype(int) - ref.astype(int))
        assert diff.max() <= 1


def test_center_crop_hand_worked():
    out = CenterCrop(crop_size=10)({"imgs": coords_clip()})
    # left = (32 - 10) // 2 = 11, top = (18 - 10) // 2 = 4
    assert out["imgs"].shape == (3, 3, 10, 10) and out["img_shape"] == (10, 10)
    assert out["imgs"][0, 0, 0, 0] == 11 and out["imgs"][0, 1, 0, 0] == 4
    assert out["crop_bbox"].tolist() == [11, 4, 21, 14]
    rect = CenterCrop(crop_size=(16, 6))({"imgs": coords_clip()})
    assert rect["imgs"].shape[-2:] == (6, 16) and rect["imgs"][0, 0, 0, 0] == 8 and rect["imgs"][0, 1, 0, 0] == 6
    with pytest.raises(ValueError, match="larger"):
        CenterCrop(crop_size=40)({"imgs": coords_clip()})


def _check_crop_is_window(out, clip):
    left, top, right, bottom = out["crop_bbox"].tolist()
    assert torch.equal(out["imgs"], clip[..., top:bottom, left:right])
    # every frame cut at the same place: the coordinate channels agree across frames
    assert torch.equal(out["imgs"][0, :2], out["imgs"][-1, :2])


def test_random_resized_crop_ranges_and_content(seeded):
    clip = coords_clip(h=60, w=80)
    t = RandomResizedCrop()
    for _ in range(30):
        out = t({"imgs": clip})
        _check_crop_is_window(out, clip)
        h, w = out["img_shape"]
        fallback = (h, w) == (60, 60)
        area = h * w / (60 * 80)
        assert fallback or 0.06 <= area <= 1.0
        assert fallback or 0.6 <= w / h <= 1.5


def test_random_resized_crop_deterministic_under_seed():
    clip = coords_clip(h=60, w=80)
    t = RandomResizedCrop(area_range=(0.3, 0.6), aspect_ratio_range=(0.5, 2.0))
    torch.manual_seed(7)
    a = [t({"imgs": clip})["crop_bbox"].tolist() for _ in range(4)]
    torch.manual_seed(7)
    b = [t({"imgs": clip})["crop_bbox"].tolist() for _ in range(4)]
    assert a == b and len({tuple(x) for x in a}) > 1
    with pytest.raises(ValueError, match="area_range"):
        RandomResizedCrop(area_range=(0.5, 1.5))


def test_random_crop_offsets_exclude_last_position(seeded):
    clip = coords_clip(h=12, w=14)
    offsets = set()
    for _ in range(200):
        out = RandomCrop(size=10)({"imgs": clip})
        _check_crop_is_window(out, clip)
        offsets.add(tuple(out["crop_bbox"][:2].tolist()))
    # mmaction2 draws from [0, side - size): x in {0..3}, y in {0, 1}
    assert offsets == {(x, y) for x in range(4) for y in range(2)}


def test_flip():
    clip = coords_clip()
    flipped = Flip(flip_ratio=1.0)({"imgs": clip})
    assert flipped["flip"] is True and torch.equal(flipped["imgs"], clip.flip(-1))
    kept = Flip(flip_ratio=0.0)({"imgs": clip})
    assert kept["flip"] is False and torch.equal(kept["imgs"], clip)
    vertical = Flip(flip_ratio=1.0, direction="vertical")({"imgs": clip})
    assert torch.equal(vertical["imgs"], clip.flip(-2)) and vertical["flip_direction"] == "vertical"
    torch.manual_seed(3)
    draws = [Flip(flip_ratio=0.5)({"imgs": clip})["flip"] for _ in range(40)]
    assert 5 < sum(draws) < 35
    with pytest.raises(ValueError, match="horizontal"):
        Flip(direction="diagonal")


def _mmaction_jitter_reference(frame, order, b, c, s, h):
    """numpy re-statement of mmaction2's ColorJitter on one HWC frame."""
    img = frame.astype(np.float32)
    gray = lambda x: 0.2989 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]  # noqa: E731
    for op in order:
        if op == 0 and b != 1:
            img = img * b
        if op == 1 and c != 1:
            img = c * img + (1 - c) * np.mean(gray(img))
        if op == 2 and s != 1:
            img = s * img + (1 - s) * np.stack([gray(img)] * 3, axis=-1)
        if op == 3 and h != 0:
            hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.int32)
            hsv[..., 0] = (hsv[..., 0] + int(h * 255)) % 180
            img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("factors", [(1.3, 1, 1, 0), (1, 0.6, 1, 0), (1, 1, 1.4, 0), (1, 1, 1, 0.08),
                                     (0.7, 1.2, 0.8, -0.05)])
def test_color_jitter_matches_mmaction_formula(factors):
    clip = random_clip()
    jitter = ColorJitter()
    out = jitter.apply(clip, *factors)
    for i in range(clip.shape[0]):
        ref = _mmaction_jitter_reference(clip[i].permute(1, 2, 0).numpy(), jitter.order, *factors)
        diff = np.abs(out[i].permute(1, 2, 0).numpy().astype(int) - ref.astype(int))
        assert diff.max() <= 1  # float32 association order may move a value across an integer


def test_color_jitter_same_change_on_every_frame_and_seeded():
    frame = random_clip(t=1)
    clip = frame.repeat(5, 1, 1, 1)
    torch.manual_seed(11)
    jitter = ColorJitter()
    out = jitter({"imgs": clip})["imgs"]
    assert out.dtype == torch.uint8 and out.shape == clip.shape
    assert all(torch.equal(out[0], out[i]) for i in range(5)) and not torch.equal(out, clip)
    torch.manual_seed(11)
    again = ColorJitter()({"imgs": clip})["imgs"]
    assert torch.equal(out, again)
    identity = ColorJitter(brightness=0, contrast=0, saturation=0, hue=0)({"imgs": clip})["imgs"]
    assert torch.equal(identity, clip)
    with pytest.raises(ValueError, match="brightness"):
        ColorJitter(brightness=1.5)


def test_imgaug_shapes_same_ops_per_frame_and_seed():
    frame = random_clip(t=1, h=32, w=32)
    clip = frame.repeat(4, 1, 1, 1)
    aug = ImgAug(transforms="default")
    seen = set()
    for seed in range(25):
        torch.manual_seed(seed)
        res = aug({"imgs": clip})
        out = res["imgs"]
        assert out.shape == clip.shape and out.dtype == torch.uint8
        assert all(torch.equal(out[0], out[i]) for i in range(4))
        ops = res["imgaug_ops"]
        assert len(ops) == 2 and ops[0] != ops[1]
        seen.update(ops)
        torch.manual_seed(seed)
        assert torch.equal(aug({"imgs": clip})["imgs"], out)
    assert len(seen) >= 10
    with pytest.raises(ValueError, match="default"):
        ImgAug(transforms=[dict(type="Rotate")])


def test_imgaug_operations():
    from opentad.transforms import photometric

    ops = dict(photometric._OPS)
    assert len(ops) == 15
    x = random_clip(t=2, h=20, w=20)
    assert torch.equal(ops["Invert"](x), 255 - x)
    assert torch.equal(ops["Posterize"](x), x & 0b11100000)  # keep 3 bits
    assert torch.equal(ops["Solarize"](x), torch.where(x.float() >= 230.4, 255 - x, x))
    bright = ops["EnhanceBrightness"](x).int()
    assert (bright - (x.float() * 1.72).clamp(max=255).int()).abs().max() <= 1
    flat = torch.full((1, 3, 20, 20), 100, dtype=torch.uint8)
    rotated = ops["Rotate"](flat)
    assert rotated[0, :, 10, 10].tolist() == [100] * 3 and rotated[0, :, 0, 0].tolist() == [0] * 3
    torch.manual_seed(0)
    cut = ops["Cutout"](flat)
    grey = (cut[0, 0] == 128)
    rows, cols = grey.any(1).nonzero().flatten(), grey.any(0).nonzero().flatten()
    assert int(grey.sum()) == len(rows) * len(cols) and len(rows) <= 4 and len(cols) <= 4  # a square of side 4


def test_imgaug_applies_the_two_drawn_ops_in_list_order(monkeypatch):
    from opentad.transforms import photometric

    monkeypatch.setattr(photometric.rng, "randint", lambda lo, hi: 13)  # Invert, then (13 -> 14) Cutout
    monkeypatch.setattr(photometric.rng, "uniform", lambda lo, hi: 0.0)  # cutout square at the top-left
    clip = random_clip(t=2, h=20, w=20)
    res = ImgAug()({"imgs": clip})
    assert res["imgaug_ops"] == ["Invert", "Cutout"]
    expected = 255 - clip
    expected[..., :4, :4] = 128  # side round(0.18 * 20) = 4, centred at (0, 0) and clipped
    expected[..., :2, :2] = 128
    out = res["imgs"]
    assert torch.equal(out[..., 4:, :], expected[..., 4:, :]) and torch.equal(out[..., :, 4:], expected[..., :, 4:])
    assert bool((out[..., :2, :2] == 128).all())


@pytest.mark.parametrize("num_clips, clip_len", [(1, 6), (2, 3), (3, 2)])
def test_format_shape_ncthw_matches_index_arithmetic(num_clips, clip_len):
    clip = random_clip(t=6, h=5, w=7)
    out = FormatShape(input_format="NCTHW")({"imgs": clip, "num_clips": num_clips, "clip_len": clip_len})
    imgs = out["imgs"]
    assert imgs.shape == (num_clips, 3, clip_len, 5, 7) and out["input_shape"] == tuple(imgs.shape)
    for n in range(num_clips):
        for t in range(clip_len):
            assert torch.equal(imgs[n, :, t], clip[n * clip_len + t])


def test_format_shape_collapse_and_nchw():
    clip = random_clip(t=4)
    out = FormatShape(input_format="NCTHW", collapse=True)({"imgs": clip, "num_clips": 1, "clip_len": 4})
    assert out["imgs"].shape == (3, 4, 24, 40)
    assert torch.equal(FormatShape(input_format="NCHW")({"imgs": clip})["imgs"], clip)
    with pytest.raises(ValueError, match="NCTHW"):
        FormatShape(input_format="NTCHW")
    with pytest.raises(TypeError, match="uint8"):
        FormatShape(input_format="NCHW")({"imgs": np.zeros((4, 24, 40, 3), np.uint8)})


@pytest.mark.parametrize("params", [dict(angle=27.0), dict(shear=[15.47, 0.0]), dict(shear=[0.0, -15.47]),
                                    dict(translate=[-10, 0]), dict(translate=[0, 7])])
def test_imgaug_affine_equals_torchvision_affine(params):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    from opentad.transforms import photometric

    clip = random_clip(t=3, h=21, w=30)
    full = dict(angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, 0.0])
    full.update(params)
    ref = TF.affine(clip, **full, interpolation=InterpolationMode.NEAREST, fill=0)
    assert torch.equal(photometric._affine(clip, **params), ref)
