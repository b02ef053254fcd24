# Full fine-tuning baseline, VideoMAE-S, ActivityNet-1.3 at 192x4 frames, 160 px:
# the whole ViT trains, at lr 1e-5 (the detector at 1e-3).
_base_ = ["../_base_/anet_192x4_160.py"]

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
    projection=dict(input_pdrop=0.2),
)

optimizer = dict(
    type="AdamW",
    lr=1e-3,
    weight_decay=0.05,
    paramwise=True,
    backbone=dict(lr=1e-5, weight_decay=0.05),
)

work_dir = "exps/anet/adatad/e2e_actionformer_videomae_s_192x4_160_fullft"
