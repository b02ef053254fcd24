# Full fine-tuning baseline, VideoMAE-S, 768 frames x 1 at 160 px.
_base_ = ["../_base_/thumos_768x1_160.py"]

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
            drop_path_rate=0.1,
            norm_cfg=dict(type="LN", eps=1e-6),
            return_feat_map=True,
            with_cp=True,
        ),
    ),
)

optimizer = dict(
    type="AdamW",
    lr=1e-4,
    weight_decay=0.05,
    paramwise=True,
    backbone=dict(lr=1e-5, weight_decay=0.05),
)

workflow = dict(checkpoint_interval=5, val_eval_interval=5, val_start_epoch=39)

work_dir = "exps/thumos/adatad/e2e_actionformer_videomae_s_768x1_160_fullft"
