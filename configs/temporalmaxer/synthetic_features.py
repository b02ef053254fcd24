# TemporalMaxer on the synthetic THUMOS-format features (data/synthetic-thumos, 64 channels,
# 5 classes, 75-225 feature rows per video). A small model that learns in well under a CPU minute:
#   python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
#   bash tools/dist_train.sh configs/temporalmaxer/synthetic_features.py 2
_base_ = [
    "../_base_/synthetic_features_recipe.py",
    "../_base_/models/temporalmaxer.py",
]

model = dict(
    projection=dict(in_channels=64, out_channels=64, arch=(2, 0, 5)),
    neck=dict(in_channels=64, out_channels=64),
    rpn_head=dict(num_classes=5, in_channels=64, feat_channels=64),
)

# As the recipe, with upstream TemporalMaxer's pre-NMS selection and NMS threshold.
post_processing = dict(pre_nms_topk=2000, pre_nms_thresh=0.001, nms=dict(iou_threshold=0))

work_dir = "exps/synthetic/temporalmaxer_features"
