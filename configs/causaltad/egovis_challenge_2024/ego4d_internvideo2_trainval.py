# CausalTAD on Ego4D-MQ InternVideo2 features trained on train + val for the challenge's test set:
# upstream OpenTAD's recipe (configs/causaltad/egovis_challenge_2024/ego4d_internvideo2_trainval.py).
# Upstream's _base_ names "ego4d_internvideo2.py" beside this file, where there is none (it does not load
# there); the file meant is configs/causaltad/ego4d_internvideo2.py (docs/migration.md).
_base_ = ["../ego4d_internvideo2.py"]

dataset = dict(train=dict(subset_name=["train", "val"]), test=dict(subset_name="test"))

workflow = dict(
    logging_interval=200,
    checkpoint_interval=1,
    val_loss_interval=-1,
    val_eval_interval=-1,
    end_epoch=20,
)

work_dir = "exps/ego4d/causal_internvideo2_trainval"
