# VideoMambaSuite (DBM) on FineAction InternVideo2-1B features (torch files <id>_spatial_pool_feature_5.pt,
# 30 fps, one feature per 8 frames), 106 classes: upstream OpenTAD's recipe
# (configs/videomambasuite/fineaction_internvideo1b.py).
_base_ = [
    "../_base_/datasets/fineaction/features_internvideo_pad.py",  # dataset
    "../_base_/models/videomambasuite.py",  # model
]

trunc_len = 2304
data_path = "data/fineaction/features/fineaction_1b/"
_load = dict(type="LoadFeats", feat_format="pt", suffix="_spatial_pool_feature_5")
_to_ct = dict(type="Rearrange", keys=["feats"], ops="t c -> c t")
_frames = dict(data_path=data_path, feature_stride=4, sample_stride=2, offset_frames=8, fps=30)
dataset = dict(
    train=dict(
        block_list=["v_00004011", "v_00006080", "v_00002783"],  # videos with faulty annotations
        pipeline=[
            _load,
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="RandomTrunc", trunc_len=trunc_len, trunc_thresh=0.5, crop_ratio=[0.9, 1.0]),
            _to_ct,
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
        **_frames,
    ),
    val=dict(
        block_list=None,
        pipeline=[
            _load,
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            _to_ct,
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
        **_frames,
    ),
    test=dict(
        block_list=None,
        pipeline=[
            _load,
            dict(type="ConvertToTensor", keys=["feats"]),
            _to_ct,
            dict(type="Collect", inputs="feats", keys=["masks"]),
        ],
        **_frames,
    ),
)
model = dict(
    projection=dict(
        in_channels=1408,
        out_channels=512,
        arch=(2, 2, 7),
        max_seq_len=2304,
        input_pdrop=0.1,
    ),
    neck=dict(in_channels=512, out_channels=512, num_levels=8),
    rpn_head=dict(
        in_channels=512,
        feat_channels=512,
        num_classes=106,
        prior_generator=dict(
            type="PointGenerator",
            strides=[1, 2, 4, 8, 16, 32, 64, 128],
            regression_range=[(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 256), (256, 10000)],
        ),
    ),
)

solver = dict(
    train=dict(batch_size=16, num_workers=4),
    val=dict(batch_size=1, num_workers=0),
    test=dict(batch_size=1, num_workers=0),
    clip_grad_norm=1.0,
    ema=True,
)

optimizer = dict(type="AdamW", lr=1e-3, weight_decay=0.05, paramwise=True)
scheduler = dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=5, max_epoch=25)

inference = dict(load_from_raw_predictions=False, save_raw_prediction=False)
post_processing = dict(
    nms=dict(
        use_soft_nms=True,
        sigma=0.75,
        max_seg_num=200,
        min_score=0.001,
        multiclass=True,
        voting_thresh=0.7,  # 0 turns voting off
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

work_dir = "exps/fineaction/videomambasuite_internvideo1b"
