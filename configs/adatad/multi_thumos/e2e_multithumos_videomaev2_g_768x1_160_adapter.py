# VideoMAEv2-g (patch 14), Multi-THUMOS at 768 frames x 1, 160 px:
# AdaTAD: frozen ViT + temporal-informative adapters in every block.
# Same recipe as the VideoMAE-S config it inherits; only the ViT size and weights change
# (and the adapters' learning rate).
_base_ = ["e2e_multithumos_videomae_s_768x1_160_adapter.py"]

model = dict(
    backbone=dict(
        backbone=dict(
            patch_size=14, embed_dims=1408, depth=40, num_heads=16, mlp_ratio=48 / 11, adapter_index=list(range(40))
        ),
        custom=dict(pretrain="pretrained/vit-giant-p14_videomaev2-hybrid_pt_1200e_k710_ft_my.pth"),
    ),
    projection=dict(in_channels=1408),
)

optimizer = dict(backbone=dict(custom=[dict(name="adapter", lr=1e-4, weight_decay=0.05)]))

work_dir = "exps/multithumos/adatad/e2e_actionformer_videomaev2_g_768x1_160_adapter"
