"""AugmentDataPreprocessor: the batched clip augmentation (opentad.transforms.batch_augment) as the first step."""
import pytest
import torch

from opentad.registry import BACKBONES, build
from opentad.transforms import BatchClipAugment
from opentad.utils.misc import load_module_random_states, module_random_states

RECIPE = [
    dict(type="mmaction.RandomResizedCrop"),
    dict(type="mmaction.Resize", scale=(40, 40), keep_ratio=False),
    dict(type="mmaction.Flip", flip_ratio=0.5),
    dict(type="mmaction.ImgAug", transforms="default"),
    dict(type="mmaction.ColorJitter"),
]


def _pre(**cfg):
    cfg = {"augment": RECIPE, "mean": [0, 0, 0], "std": [1, 1, 1], "format_shape": "NCTHW", **cfg}
    return build(dict(type="AugmentDataPreprocessor", **cfg), BACKBONES)


def test_augment_chunk_frames_config_key_reaches_the_augmentation():
    assert _pre(augment_chunk_frames=24).augment.chunk_frames == 24
    assert _pre().augment.chunk_frames == 128
    for augment in (RECIPE, None):
        with pytest.raises(ValueError, match="augment_chunk_frames must be >= 1, got 0"):
            _pre(augment=augment, augment_chunk_frames=0)


def test_preprocessor_augments_in_training_only():
    """Training: exactly the replayed augmentation, then the plain normalisation (same operations, same data)."""
    mean, std = [100.0, 110.0, 120.0], [50.0, 60.0, 70.0]
    pre = _pre(augment_seed=0, mean=mean, std=std)
    plain = build(dict(type="mmaction.ActionDataPreprocessor", mean=mean, std=std, format_shape="NCTHW"), BACKBONES)
    clips = torch.randint(0, 256, (2, 1, 3, 6, 36, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    pre.train()
    out = pre(clips)
    assert out.shape == (2, 1, 3, 6, 40, 40) and out.dtype == torch.float32
    replay = BatchClipAugment(transforms=RECIPE, seed=0)  # the same private stream: the same draws
    replay.photometric[-1].order = pre.augment.photometric[-1].order  # ColorJitter's order is drawn when built
    assert torch.equal(out, plain(replay(clips)))
    pre.eval()
    assert torch.equal(pre(clips), plain(clips))
    pre.train()
    with pytest.raises(TypeError, match="uint8"):
        pre(clips.float())


def test_preprocessor_carries_the_draw_count_through_a_checkpoint():
    """The draw count travels through ``opentad.utils.misc.module_random_states`` (what checkpoints keep)."""
    pre = _pre(augment_seed=5)
    pre.augment.draws = 7
    saved = module_random_states(torch.nn.Sequential(pre))
    assert saved == {"0": {"draws": 7}}
    fresh = _pre(augment_seed=5)
    load_module_random_states(torch.nn.Sequential(fresh), saved)
    assert fresh.augment.draws == 7
    with pytest.raises(KeyError, match="stateful modules are"):
        load_module_random_states(torch.nn.Sequential(fresh), {"backbone.gone": {"draws": 1}})
