# Frozen-backbone baseline, VideoMAE-S, 768 frames x 1 at 160 px: the ViT runs
# without autograd and only the detector trains (no spatial augmentation).
_base_ = ["../_base_/thumos_768x1_160.py"]

window_size = 768
scale_factor = 1

dataset = dict(
    train=dict(
        pipeline=[
            dict(type="PrepareVideoInfo", format="mp4"),
            dict(type="mmaction.DecordInit", num_threads=4),
            dict(
                type="LoadFrames",
                num_clips=1,
                method="random_trunc",
                trunc_len=window_size,
                trunc_thresh=0.75,
                crop_ratio=[0.9, 1.0],
                scale_factor=scale_factor,
            ),
            dict(type="mmaction.DecordDecode"),
            dict(type="mmaction.Resize", scale=(-1, 160)),
            dict(type="mmaction.CenterCrop", crop_size=160),
            dict(type="mmaction.FormatShape", input_format="NCTHW"),
            dict(type="ConvertToTensor", keys=["imgs", "gt_segments", "gt_labels"]),
            dict(type="Collect", inputs="imgs", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
)

model = dict(
    backbone=dict(
        backbone=dict(
            type="VisionTransformerCP",
            img_size=224,
            patch_size=16,
            embed_dims=384,
            depth=12,
            num_heads=6,
            mlp_ratio=4,
            qkv_bias=True,
            num_frames=16,
            norm_cfg=dict(type="LN", eps=1e-6),
            return_feat_map=True,
            with_cp=False,
        ),
        custom=dict(norm_eval=True, freeze_backbone=True),
    ),
    projection=dict(input_pdrop=0.2),
)

solver = dict(static_graph=False)

optimizer = dict(type="AdamW", lr=1e-4, weight_decay=0.05, paramwise=True)

post_processing = dict(nms=dict(sigma=0.5, min_score=0.001))

workflow = dict(checkpoint_interval=5, val_eval_interval=5, val_start_epoch=39)

work_dir = "exps/thumos/adatad/e2e_actionformer_videomae_s_768x1_160_frozen"
