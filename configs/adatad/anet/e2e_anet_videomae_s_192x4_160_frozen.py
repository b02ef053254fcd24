# Frozen-backbone baseline, VideoMAE-S, ActivityNet-1.3 at 192x4 frames, 160 px:
# the ViT runs without autograd and only the detector trains; training frames
# are centre-cropped as in validation (no spatial augmentation).
_base_ = ["../_base_/anet_192x4_160.py"]

dataset = dict(train=dict(pipeline={{_base_.dataset.val.pipeline}}))

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

optimizer = dict(type="AdamW", lr=1e-3, weight_decay=0.05, paramwise=True)

work_dir = "exps/anet/adatad/e2e_actionformer_videomae_s_192x4_160_frozen"
