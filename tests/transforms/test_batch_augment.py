"""BatchClipAugment: bilinear geometry against F.interpolate, same parameters and pixels as the CPU
transforms, same parameter distributions (statistical checks under a seed), its own random stream."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from opentad.transforms import BatchClipAugment, ColorJitter, Compose, Flip, FormatShape, ImgAug, RandomResizedCrop
from opentad.transforms import Resize
from opentad.transforms.batch_augment import crop_resize_flip

RECIPE = [
    dict(type="mmaction.RandomResizedCrop"),
    dict(type="mmaction.Resize", scale=(40, 40), keep_ratio=False),
    dict(type="mmaction.Flip", flip_ratio=0.5),
    dict(type="mmaction.ImgAug", transforms="default"),
    dict(type="mmaction.ColorJitter"),
]


def _clips(b=2, n=1, t=6, h=36, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 256, (b, n, 3, t, h // 4, w // 4), generator=g).float()
    smooth = F.interpolate(coarse.flatten(0, 3)[:, None], size=(h, w), mode="bilinear", align_corners=False)
    return smooth.round().clamp(0, 255).to(torch.uint8).view(b, n, 3, t, h, w)


def _reference_crop_resize(frames, box, size, flip):
    """F.interpolate (float, as torchvision's resize off the CPU) on the cropped frames, then flipped; not rounded."""
    left, top, w, h = box
    out = F.interpolate(frames[..., top : top + h, left : left + w].float(), size=size, mode="bilinear",
                        align_corners=False)
    return out.flip(-1) if flip else out


@pytest.mark.parametrize("box, size, flip", [((3, 5, 50, 27), (40, 40), False), ((0, 0, 64, 36), (20, 30), True),
                                             ((10, 2, 17, 33), (40, 40), True), ((0, 0, 64, 36), (36, 64), False)])
def test_crop_resize_flip_equals_interpolate_on_the_crop(box, size, flip):
    frames = _clips(b=2, n=1, t=4)[:, 0].reshape(2, 12, 36, 64)
    boxes = torch.tensor([box, (0, 0, 64, 36)])
    out = crop_resize_flip(frames, boxes, size, torch.tensor([flip, False]))
    for i in range(2):
        ref = _reference_crop_resize(frames[i : i + 1], tuple(boxes[i].tolist()), size, flip and i == 0)[0]
        assert (out[i].float() - ref).abs().max() <= 0.5 + 1e-3  # the nearest level (ties either way)
    if size == (36, 64) and not flip:
        assert torch.equal(out, frames)  # same size, whole frame: a copy


def test_crop_resize_hand_worked_halving():
    ramp = torch.arange(8, dtype=torch.uint8).repeat(4, 1) * 10  # columns 0, 10, ..., 70
    out = crop_resize_flip(ramp.view(1, 1, 4, 8), torch.tensor([[2, 0, 4, 4]]), (2, 2), torch.tensor([False]))
    # columns 2..5 (20, 30, 40, 50) halved: means of pairs 25 and 45 (bilinear at x = 0.5 and 2.5)
    assert out.flatten().tolist() == [25, 45, 25, 45]
    flipped = crop_resize_flip(ramp.view(1, 1, 4, 8), torch.tensor([[2, 0, 4, 4]]), (2, 2), torch.tensor([True]))
    assert flipped.flatten().tolist() == [45, 25, 45, 25]


def test_same_draws_as_the_cpu_pipeline():
    transforms = Compose(RECIPE).transforms  # built once, shared by both paths (ColorJitter's order included)
    cpu, aug = Compose(transforms), BatchClipAugment(transforms=transforms)
    frames = _clips(b=1)[0, 0].permute(1, 0, 2, 3)  # [T, 3, H, W]
    for seed in range(20):
        torch.manual_seed(seed)
        results = cpu({"imgs": frames.clone()})
        torch.manual_seed(seed)
        (params,) = aug.sample_params(1, 36, 64)
        left, top, right, bottom = results["crop_bbox"].tolist()
        assert params.box == (left, top, right - left, bottom - top) and params.flip == results["flip"]
        assert ImgAug.op_names(params.photometric[0]) == results["imgaug_ops"]


def test_photometric_part_equals_the_cpu_transforms_per_sample_and_clip():
    """No geometry: the batch path runs the CPU transforms' own code, so pixels must be identical."""
    transforms = [Flip(flip_ratio=0.5), ImgAug(), ColorJitter()]
    cpu, aug = Compose(transforms), BatchClipAugment(transforms=transforms)
    clips = _clips(b=3, n=2, t=3)  # [B, N, C, T, H, W]
    for seed in range(6):
        torch.manual_seed(seed)
        expected = []
        for b in range(3):  # the CPU path sees frames [N*T, 3, H, W] in clip order, then FormatShape
            frames = clips[b].permute(0, 2, 1, 3, 4).reshape(6, 3, 36, 64).clone()
            res = cpu({"imgs": frames, "num_clips": 2, "clip_len": 3})
            expected.append(FormatShape(input_format="NCTHW")(res)["imgs"])
        torch.manual_seed(seed)
        out = aug.apply(clips.clone(), aug.sample_params(3, 36, 64))
        assert torch.equal(out, torch.stack(expected))


def test_whole_recipe_close_to_the_cpu_pipeline():
    transforms = Compose(RECIPE).transforms
    cpu, aug = Compose(transforms), BatchClipAugment(transforms=transforms)
    frames = _clips(b=1, t=4)[0, 0].permute(1, 0, 2, 3)
    for seed in range(8):
        torch.manual_seed(seed)
        ref = cpu({"imgs": frames.clone()})["imgs"]
        torch.manual_seed(seed)
        out = aug.apply(frames.permute(1, 0, 2, 3)[None, None].contiguous(), aug.sample_params(1, 36, 64))
        diff = (out[0, 0].permute(1, 0, 2, 3).int() - ref.int()).abs().float()
        # CPU torchvision resizes uint8 with fixed-point weights (a level apart on some pixels); the
        # photometric ops can stretch that (contrast, equalize), but the images must agree overall
        assert out.shape == (1, 1, 3, 4, 40, 40) and diff.mean() < 2.0, (seed, float(diff.mean()))


def _ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)))


def _reference_rrc(rng, h, w, n, area_range=(0.08, 1.0), ratio_range=(3 / 4, 4 / 3)):
    """mmaction2's RandomResizedCrop box sampling, written independently with numpy's generator."""
    areas, ratios = [], []
    for _ in range(n):
        for _ in range(10):
            ratio = math.exp(rng.uniform(math.log(ratio_range[0]), math.log(ratio_range[1])))
            area = rng.uniform(*area_range) * h * w
            cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if cw <= w and ch <= h:
                break
        else:
            cw = ch = min(h, w)
        areas.append(cw * ch / (h * w))
        ratios.append(cw / ch)
    return np.array(areas), np.array(ratios)


def test_parameter_distributions_follow_the_cpu_transforms():
    n, h, w = 3000, 182, 324
    aug = BatchClipAugment(transforms=RECIPE, seed=123)
    params = []
    for _ in range(n // 10):
        params += aug.draw(10, h, w)
    boxes = np.array([p.box for p in params], dtype=float)
    areas, ratios = boxes[:, 2] * boxes[:, 3] / (h * w), boxes[:, 2] / boxes[:, 3]
    ref_areas, ref_ratios = _reference_rrc(np.random.default_rng(7), h, w, n)
    # KS critical value at alpha = 0.001 for n = m = 3000 is 1.95 * sqrt(2 / 3000) = 0.050
    assert _ks(areas, ref_areas) < 0.05 and _ks(ratios, ref_ratios) < 0.05
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= w).all()
    assert (boxes[:, 1] + boxes[:, 3] <= h).all()
    flips = np.array([p.flip for p in params])
    assert abs(flips.mean() - 0.5) < 0.04  # 4.4 standard errors
    factors = np.array([p.photometric[1] for p in params])  # brightness, contrast, saturation, hue
    assert np.all(np.abs(factors[:, :3].mean(0) - 1.0) < 0.025) and abs(factors[:, 3].mean()) < 0.005
    assert factors[:, :3].min() >= 0.5 and factors[:, :3].max() <= 1.5 and np.abs(factors[:, 3]).max() <= 0.1
    ops = np.array([[i for i, _ in p.photometric[0]] for p in params])
    assert (ops[:, 0] < ops[:, 1]).all()  # two different ops, in list order
    counts = np.bincount(ops.ravel(), minlength=15) / n
    assert np.all(np.abs(counts - 2 / 15) < 0.03)  # each op in 2 of 15 clips (about 4.8 standard errors)


def test_crop_and_flip_draws_match_the_cpu_transforms_draws():
    """The GPU path's draws against the CPU transforms' own outputs (another seed): same distributions."""
    n, h, w = 2000, 182, 324
    transforms = Compose(RECIPE[:3]).transforms
    cpu = Compose([transforms[0], transforms[2]])  # the CPU crop and flip (the resize draws nothing)
    torch.manual_seed(99)
    frame = torch.zeros(1, 3, h, w, dtype=torch.uint8)
    cpu_boxes, cpu_flips = [], []
    for _ in range(n):
        res = cpu({"imgs": frame})
        left, top, right, bottom = res["crop_bbox"].tolist()
        cpu_boxes.append((right - left, bottom - top))
        cpu_flips.append(res["flip"])
    params = BatchClipAugment(transforms=transforms, seed=3).draw(n, h, w)
    gpu_boxes = np.array([p.box[2:] for p in params], dtype=float)
    cpu_boxes = np.array(cpu_boxes, dtype=float)
    # KS critical value at alpha = 0.001 for n = m = 2000: 1.95 * sqrt(2 / 2000) = 0.062
    assert _ks(gpu_boxes.prod(1), cpu_boxes.prod(1)) < 0.062
    assert _ks(gpu_boxes[:, 0] / gpu_boxes[:, 1], cpu_boxes[:, 0] / cpu_boxes[:, 1]) < 0.062
    assert abs(np.mean([p.flip for p in params]) - np.mean(cpu_flips)) < 0.065  # 4 standard errors of the difference


def test_private_stream_leaves_the_global_one_and_separates_ranks(monkeypatch):
    torch.manual_seed(0)
    aug = BatchClipAugment(transforms=RECIPE, seed=5)  # building draws ColorJitter's order, as on the CPU
    state = torch.get_rng_state()
    first = aug.draw(4, 36, 64)
    assert torch.equal(torch.get_rng_state(), state)
    again = BatchClipAugment(transforms=RECIPE, seed=5)
    assert again.draw(4, 36, 64) == first and again.draw(4, 36, 64) != first  # reproducible, and moving on
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    assert BatchClipAugment(transforms=RECIPE, seed=5).draw(4, 36, 64) != first


def test_saved_draw_count_continues_the_same_sequence():
    torch.manual_seed(0)
    run = BatchClipAugment(transforms=RECIPE, seed=5)
    for _ in range(3):
        run.draw(2, 36, 64)
    state = run.state_dict()
    assert state == {"draws": 3}
    fourth = run.draw(2, 36, 64)
    resumed = BatchClipAugment(transforms=RECIPE, seed=5)
    resumed.load_state_dict(state)
    assert resumed.draw(2, 36, 64) == fourth


def _every_photometric_op(aug, batch, h, w):
    """Parameter sets covering each ImgAug operation (paired with the next) and a hue-shifting ColorJitter."""
    from opentad.transforms.photometric import _SPECS

    torch.manual_seed(0)
    base = aug.sample_params(batch, h, w)
    sets = []
    for first in range(len(_SPECS)):
        chosen = sorted({first, (first + 1) % len(_SPECS)})
        values = [(i, _SPECS[i].sample(h, w) if _SPECS[i].sample is not None else None) for i in chosen]
        sets.append([p._replace(photometric=[values, (1.2, 0.8, 1.3, 0.1)]) for p in base])
    return sets


def test_chunked_augmentation_equals_the_whole_clip_and_bounds_memory():
    """Frames in chunks (an odd size, so the last chunk is short) give the pixels of the whole clip at once,
    for every photometric operation, and the tensors alive at the peak shrink with the chunk."""
    from opentad.utils.live_bytes import LiveTensorBytes

    chunked = BatchClipAugment(transforms=RECIPE, chunk_frames=7)
    whole = copy.copy(chunked)  # the same built transforms: ColorJitter draws its order of operations when built
    whole.chunk_frames = 10**6
    clips = _clips(b=2, n=2, t=10, h=36, w=64)
    for params in _every_photometric_op(whole, 2, 36, 64):
        names = ImgAug.op_names(params[0].photometric[0])
        assert torch.equal(chunked.apply(clips, params), whole.apply(clips, params)), names
    torch.manual_seed(1)
    params = whole.sample_params(1, 36, 64)
    long = _clips(b=1, n=1, t=96, h=36, w=64)
    peaks = {}
    for name, aug in (("chunked", chunked), ("whole", whole)):
        with LiveTensorBytes() as meter:
            aug.apply(long, params)
        peaks[name] = meter.peak
    out_bytes = 96 * 3 * 40 * 40  # the uint8 result
    assert peaks["whole"] > 4 * out_bytes  # float32 temporaries of the whole clip
    assert peaks["chunked"] < 0.5 * peaks["whole"] and peaks["chunked"] < 3 * out_bytes


def test_bad_transform_lists_and_inputs_are_rejected():
    with pytest.raises(ValueError, match="chunk_frames must be >= 1, got 0"):
        BatchClipAugment(transforms=RECIPE, chunk_frames=0)
    with pytest.raises(ValueError, match="RandomResizedCrop.*out of order"):
        BatchClipAugment(transforms=[Flip(), RandomResizedCrop(), Resize(scale=(8, 8), keep_ratio=False)])
    with pytest.raises(ValueError, match="fixed-size Resize"):
        BatchClipAugment(transforms=[RandomResizedCrop(), Flip()])
    with pytest.raises(ValueError, match="keep_ratio=False"):
        BatchClipAugment(transforms=[Resize(scale=(-1, 8))])
    with pytest.raises(TypeError, match="uint8"):
        BatchClipAugment(transforms=RECIPE)(torch.zeros(1, 1, 3, 2, 8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu():
    aug = BatchClipAugment(transforms=RECIPE)
    clips = _clips(b=3, n=1, t=8)
    for seed in range(6):
        torch.manual_seed(seed)
        params = aug.sample_params(3, 36, 64)
        cpu = aug.apply(clips, params)
        gpu = aug.apply(clips.cuda(), params).cpu()
        diff = (gpu.int() - cpu.int()).abs().float()
        assert diff.mean() < 0.5, (seed, float(diff.mean()))
