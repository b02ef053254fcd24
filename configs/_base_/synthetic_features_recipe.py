# The shared recipe of the configs/<family>/synthetic_features.py configs: the synthetic THUMOS-format
# features (data/synthetic-thumos, 64 channels, 5 classes, 75-225 feature rows per video), batches,
# schedule, NMS and workflow of a short CPU training. A family config lists this file and its model base:
#   _base_ = ["../_base_/synthetic_features_recipe.py", "../_base_/models/<family>.py"]
_base_ = ["datasets/synthetic/features_stride4_pad.py"]

# Validation and test samples are padded to one length so that batches of 2 stack (one video per
# process with 2 processes; batch_size is the global batch).
dataset = dict(
    val=dict(
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="Padding", length={{_base_.trunc_len}}),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
    ),
    test=dict(
        pipeline=[
            dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats"]),
            dict(type="Padding", length={{_base_.trunc_len}}),
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks"]),
        ],
    ),
)

solver = dict(
    train=dict(batch_size=4, num_workers=0),
    val=dict(batch_size=2, num_workers=0),
    test=dict(batch_size=2, num_workers=0),
    clip_grad_norm=1,
    ema=False,  # upstream's EMA decay (0.999) needs far more than this run's 100 iterations
)

optimizer = dict(type="AdamW", lr=1e-3, weight_decay=0.05, paramwise=True)
scheduler = dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=2, max_epoch=20)

inference = dict(load_from_raw_predictions=False, save_raw_prediction=False)
post_processing = dict(
    nms=dict(
        use_soft_nms=True,
        sigma=0.5,
        max_seg_num=200,
        iou_threshold=0.1,
        min_score=0.001,
        multiclass=True,
        voting_thresh=0.7,
    ),
    save_dict=False,
)

workflow = dict(
    logging_interval=5,
    checkpoint_interval=10,
    val_loss_interval=5,
    val_eval_interval=10,
    val_start_epoch=0,
)
