# The EPIC-Kitchens noun model trained on train + val for the challenge's test set (no validation):
# upstream OpenTAD's recipe (configs/causaltad/egovis_challenge_2024/epic_internvideo2_1b_noun_trainval.py).
_base_ = ["epic_internvideo2_1b_noun.py"]

dataset = dict(train=dict(subset_name=["train", "val"]), test=dict(subset_name="test"))

workflow = dict(
    logging_interval=200,
    checkpoint_interval=1,
    val_loss_interval=-1,
    val_eval_interval=-1,
)

work_dir = "exps/epic_kitchens/causal_internvideo2_1b_noun_trainval"
