# AdaTAD, VideoMAE-S, ActivityNet-1.3 at 192x4 frames, 160 px: frozen ViT +
# temporal-informative adapters in all 12 blocks (only the adapters and the detector train).
_base_ = ["../_base_/anet_192x4_160.py"]

resize_length = 192
scale_factor = 4

model = dict(
    backbone=dict(
        backbone=dict(
            type="VisionTransformerAdapter",
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
            total_frames=resize_length * scale_factor,
            adapter_index=list(range(12)),
        ),
    ),
)

optimizer = dict(
    type="AdamW",
    lr=1e-3,
    weight_decay=0.05,
    paramwise=True,
    backbone=dict(
        lr=0,
        weight_decay=0,
        custom=[dict(name="adapter", lr=1e-4, weight_decay=0.05)],
        exclude=["backbone"],
    ),
)

work_dir = "exps/anet/adatad/e2e_actionformer_videomae_s_192x4_160_adapter"
