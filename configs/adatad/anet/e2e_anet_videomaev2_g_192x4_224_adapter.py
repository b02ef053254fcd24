# AdaTAD, VideoMAEv2-g (patch 14), ActivityNet-1.3 at 192x4 frames, 224 px;
# adapters only in the last 20 of the 40 blocks. The VideoMAE-S adapter recipe
# otherwise (so also its adapter lr of 1e-4).
_base_ = ["../_base_/anet_192x4_224.py"]

model = dict(
    backbone=dict(
        backbone=dict(
            patch_size=14,
            embed_dims=1408,
            depth=40,
            num_heads=16,
            mlp_ratio=48 / 11,
            adapter_index=list(range(20, 40)),
        ),
        custom=dict(pretrain="pretrained/vit-giant-p14_videomaev2-hybrid_pt_1200e_k710_ft_my.pth"),
    ),
    projection=dict(in_channels=1408),
)

work_dir = "exps/anet/adatad/e2e_actionformer_videomaev2_g_192x4_224_adapter"
