# AdaTAD VideoMAE-S adapter recipe (e2e_thumos_videomae_s_768x1_160_adapter.py) trained from the
# frame cache, with the augmentation on the GPU (docs/data_pipeline.md).
#
# Training reads 768-frame windows from a cache of every 4th frame at short side 182 (build it once:
#   python tools/prepare_data/cache_frames.py configs/adatad/thumos/e2e_thumos_videomae_s_768x1_160_adapter_cached.py
# ); the random window and ground truth are those of LoadFrames(random_trunc). RandomResizedCrop,
# Resize 160x160, Flip, ImgAug and ColorJitter then run on the batch in the backbone's data preprocessor,
# with the same parameter distributions as the CPU transforms. Validation and testing read the
# raw videos, as in the base recipe.
_base_ = ["e2e_thumos_videomae_s_768x1_160_adapter.py"]

window_size = 768
scale_factor = 1
frame_cache = "data/thumos-14/frame_cache/stride4_short182"

dataset = dict(
    train=dict(
        pipeline=[
            dict(
                type="LoadCachedFrames",
                cache_dir=frame_cache,
                short_side=182,
                num_clips=1,
                method="random_trunc",
                trunc_len=window_size,
                trunc_thresh=0.75,
                crop_ratio=[0.9, 1.0],
                scale_factor=scale_factor,
            ),
            dict(type="mmaction.FormatShape", input_format="NCTHW"),
            dict(type="ConvertToTensor", keys=["imgs", "gt_segments", "gt_labels"]),
            dict(type="Collect", inputs="imgs", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
)

model = dict(
    backbone=dict(
        data_preprocessor=dict(
            type="AugmentDataPreprocessor",
            augment=[
                dict(type="mmaction.RandomResizedCrop"),
                dict(type="mmaction.Resize", scale=(160, 160), keep_ratio=False),
                dict(type="mmaction.Flip", flip_ratio=0.5),
                dict(type="mmaction.ImgAug", transforms="default"),
                dict(type="mmaction.ColorJitter"),
            ],
        ),
    ),
)

# workers only read uint8 windows: a few keep up with the GPU (docs/benchmarks.md, "Data loading")
solver = dict(train=dict(batch_size=2, num_workers=6, persistent_workers=True))

work_dir = "exps/thumos/adatad/e2e_actionformer_videomae_s_768x1_160_adapter_cached"
