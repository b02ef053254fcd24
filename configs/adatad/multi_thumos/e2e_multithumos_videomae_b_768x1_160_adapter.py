# VideoMAE-B, Multi-THUMOS at 768 frames x 1, 160 px:
# AdaTAD: frozen ViT + temporal-informative adapters in every block.
# Same recipe as the VideoMAE-S config it inherits; only the ViT size and weights change
# (and the adapters' learning rate).
_base_ = ["e2e_multithumos_videomae_s_768x1_160_adapter.py"]

model = dict(
    backbone=dict(
        backbone=dict(embed_dims=768, depth=12, num_heads=12),
        custom=dict(pretrain="pretrained/vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-860a3cd3.pth"),
    ),
    projection=dict(in_channels=768),
)

optimizer = dict(backbone=dict(custom=[dict(name="adapter", lr=4e-4, weight_decay=0.05)]))

work_dir = "exps/multithumos/adatad/e2e_actionformer_videomae_b_768x1_160_adapter"
