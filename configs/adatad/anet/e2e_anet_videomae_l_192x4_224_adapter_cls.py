# AdaTAD, VideoMAE-L, ActivityNet-1.3 at 192x4 frames, 224 px, with its own
# 200-class head (no external video classifier): class-aware datasets, a wider
# detector (512 channels), multi-class soft-NMS, 20-epoch schedule, adapter lr 8e-5.
_base_ = ["../_base_/anet_192x4_224.py"]

dataset = dict(
    train=dict(class_agnostic=False),
    val=dict(class_agnostic=False),
    test=dict(class_agnostic=False),
)

model = dict(
    backbone=dict(
        backbone=dict(embed_dims=1024, depth=24, num_heads=16, adapter_index=list(range(24))),
        custom=dict(pretrain="pretrained/vit-large-p16_videomae-k400-pre_16x4x1_kinetics-400_20221013-229dbb03.pth"),
    ),
    projection=dict(in_channels=1024, out_channels=512),
    neck=dict(in_channels=512, out_channels=512),
    rpn_head=dict(
        in_channels=512,
        feat_channels=512,
        num_classes=200,
        label_smoothing=0.1,
        loss_weight=1.0,
        loss_normalizer=200,
    ),
)

optimizer = dict(backbone=dict(custom=[dict(name="adapter", lr=8e-5, weight_decay=0.05)]))
scheduler = dict(max_epoch=20)

post_processing = dict(
    _delete_=True,
    nms=dict(
        use_soft_nms=True,
        sigma=0.75,
        max_seg_num=100,
        min_score=0.001,
        multiclass=True,
        voting_thresh=0.9,
    ),
    save_dict=False,
)

workflow = dict(val_start_epoch=10, end_epoch=15)

work_dir = "exps/anet/adatad/e2e_actionformer_videomae_l_192x4_224_adapter_cls_e20_lr8e-5"
