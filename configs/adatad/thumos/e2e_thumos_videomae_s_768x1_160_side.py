# Side-tuning variant, VideoMAE-S, 768 frames x 1 at 160 px: the ViT runs
# without autograd and a ladder of temporal adapters on blocks 6..11 trains.
_base_ = ["../_base_/thumos_768x1_160.py"]

window_size = 768
scale_factor = 1

model = dict(
    backbone=dict(
        backbone=dict(
            type="VisionTransformerLadder",
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
            with_cp=True,
            total_frames=window_size * scale_factor,
            adapter_index=list(range(6, 12)),
        ),
    ),
    projection=dict(input_pdrop=0.1),
)

optimizer = dict(
    type="AdamW",
    lr=1e-4,
    weight_decay=0.05,
    paramwise=True,
    backbone=dict(
        lr=0,
        weight_decay=0,
        custom=[dict(name="adapter", lr=2e-4, weight_decay=0.05)],
        exclude=["backbone"],
    ),
)

work_dir = "exps/thumos/adatad/e2e_actionformer_videomae_s_768x1_160_side"
