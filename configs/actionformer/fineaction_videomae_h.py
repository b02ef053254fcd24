# ActionFormer on FineAction VideoMAE-H features (class-agnostic, classes from a video classifier):
# upstream OpenTAD's recipe (configs/actionformer/fineaction_videomae_h.py).
_base_ = [
    "../_base_/datasets/fineaction/features_internvideo_resize_trunc.py",  # dataset
    "../_base_/models/actionformer.py",  # model
]

model = dict(
    projection=dict(
        in_channels=1280,
        out_channels=256,
        attn_cfg=dict(n_mha_win_size=[7, 7, 7, 7, 7, -1]),
        use_abs_pe=True,
        max_seq_len=192,
    ),
    neck=dict(in_channels=256, out_channels=256),
    rpn_head=dict(
        in_channels=256,
        feat_channels=256,
        num_classes=1,
        label_smoothing=0.1,
        loss_weight=2.0,
        loss_normalizer=200,
    ),
)

solver = dict(
    train=dict(batch_size=16, num_workers=4),
    val=dict(batch_size=16, num_workers=4),
    test=dict(batch_size=16, num_workers=4),
    clip_grad_norm=1,
    ema=True,
)

optimizer = dict(type="AdamW", lr=1e-3, weight_decay=0.05, paramwise=True)
scheduler = dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=5, max_epoch=20)

inference = dict(load_from_raw_predictions=False, save_raw_prediction=False)
post_processing = dict(
    nms=dict(
        use_soft_nms=True,
        sigma=0.75,
        max_seg_num=100,
        iou_threshold=0,  # unused by soft-NMS
        min_score=0.001,
        multiclass=False,
        voting_thresh=0.9,  # 0 turns voting off
    ),
    external_cls=dict(
        type="StandardClassifier",
        path="./data/fineaction/classifiers/new_swinB_1x1x256_views2x3_max_label_avg_prob.json",
        topk=2,
    ),
    save_dict=False,
)

workflow = dict(
    logging_interval=200,
    checkpoint_interval=1,
    val_loss_interval=1,
    val_eval_interval=1,
    val_start_epoch=10,
)

work_dir = "exps/fineaction/actionformer_videomae_h"
