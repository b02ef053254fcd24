# TSI on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels, 5 classes),
# labels from the generator's video classifier (classifiers/video_classifier.json, StandardClassifier):
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/tsi/synthetic_features.py 2
# configs/bmn/synthetic_features.py (data, schedule, narrowed BMN model, post-processing) with what
# upstream's TSI changes in BMN (configs/_base_/models/tsi.py): the local/global boundary head (its global
# branch keeps its fixed 128-1024 channels) and the scale-invariant confidence loss.
_base_ = ["../bmn/synthetic_features.py"]

model = dict(
    type="TSI",
    rpn_head=dict(_delete_=True, type="LocalGlobalTemporalEvaluationHead", in_channels=64, loss=dict(pos_thresh=0.5)),
    roi_head=dict(
        proposal_head=dict(
            type="TSIHead",
            loss=dict(cls_loss=dict(_delete_=True, type="ScaleInvariantLoss", pos_thresh=0.9)),
        ),
    ),
)

work_dir = "exps/synthetic/tsi_features"
