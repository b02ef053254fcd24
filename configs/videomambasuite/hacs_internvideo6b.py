# VideoMambaSuite (DBM) on HACS-1.1.1 InternVideo2-6B features (torch files v_<id>_spatial_pool_feature_6.pt,
# 30 fps, one feature per 8 frames; class-agnostic, classes from the UMTv2-6B video classifier): upstream
# OpenTAD's recipe (configs/videomambasuite/hacs_internvideo6b.py).
_base_ = [
    "../_base_/datasets/hacs-1.1.1/features_slowfast_pad.py",  # dataset
    "../_base_/models/videomambasuite.py",  # model
]

# videos without features: left out of validation and test (upstream's list)
block_list = [
    "-LzyV1PtJXE",
    "6okHpDA7caA",
    "8P9hAN-teOU",
    "AcOgvJ6U0T8",
    "AkMSIaZyX00",
    "Cm2j1EhVkHc",
    "EEvcgmd8kzg",
    "HjunnoyAinU",
    "Ht2gV7oaqbo",
    "Jbu3hE_CQaw",
    "Lp1oWVjxm4I",
    "New9JV1dKSU",
    "PcltZ1RZmZ0",
    "Q_QRFa5r3s0",
    "S4ZC3rz0q5c",
    "ShwMX7iMdCw",
    "V9uNF5W9KjM",
    "ZrhHEvR84AE",
    "d0ViiZ_QsLo",
    "jsuwmH5Y7OM",
    "mAE0CQURjj8",
    "mllZ0ycwvTs",
    "mnhMpLONbtY",
    "oUMmneMSfC0",
    "tqBKTZxSxwQ",
    "vA4STJJyyxU",
    "xaAjiyc4VmM",
    "y41wrOt1K1M",
]

trunc_len = 2304
data_path = "data/hacs-1.1.1/features/hacs_6b/"
_load = dict(type="LoadFeats", feat_format="pt", prefix="v_", suffix="_spatial_pool_feature_6")
_to_ct = dict(type="Rearrange", keys=["feats"], ops="t c-> c t")
_frames = dict(data_path=data_path, feature_stride=8, offset_frames=8, fps=30, class_agnostic=True)
dataset = dict(
    train=dict(
        block_list=None,
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
        block_list=block_list,
        pipeline=[
            _load,
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
            dict(type="Padding", length=trunc_len),
            _to_ct,
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
        ],
        **_frames,
    ),
    test=dict(
        block_list=block_list,
        pipeline=[
            _load,
            dict(type="ConvertToTensor", keys=["feats"]),
            dict(type="Padding", length=trunc_len),
            _to_ct,
            dict(type="Collect", inputs="feats", keys=["masks"]),
        ],
        **_frames,
    ),
)

model = dict(
    projection=dict(
        in_channels=3200,
        out_channels=256,
        use_abs_pe=True,
        max_seq_len=2304,
        input_pdrop=0.1,
    ),
    neck=dict(in_channels=256, out_channels=256),
    rpn_head=dict(
        in_channels=256,
        feat_channels=256,
        num_classes=1,
        label_smoothing=0.1,
        loss_normalizer=400,
    ),
)
solver = dict(
    train=dict(batch_size=16, num_workers=4),
    val=dict(batch_size=16, num_workers=4),
    test=dict(batch_size=16, num_workers=4),
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
        max_seg_num=100,
        min_score=0.001,
        multiclass=False,
        voting_thresh=0.7,  # 0 turns voting off
    ),
    external_cls=dict(
        type="StandardClassifier",
        path="data/hacs-1.1.1/classifiers/hacs_UMTv2_6B_k710+K40_f16_frozenTuning.json_converted.json",
        topk=2,
    ),
    save_dict=False,
)

workflow = dict(
    logging_interval=200,
    checkpoint_interval=1,
    val_loss_interval=1,
    val_eval_interval=1,
    val_start_epoch=8,
)

work_dir = "exps/hacs/videomambasuite_internvideo6b"
