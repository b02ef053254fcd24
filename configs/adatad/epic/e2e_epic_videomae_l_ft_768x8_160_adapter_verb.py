# AdaTAD, EPIC-Kitchens-100 verbs: the noun recipe (e2e_epic_videomae_l_ft_768x8_160_adapter_noun.py)
# with the verb annotations, the VideoMAE-L fine-tuned on EPIC verbs, 97 verb
# classes and no label smoothing. Upstream writes the verb config out in full on
# its verb dataset base; the paths below are that base's
# (configs/_base_/datasets/epic_kitchens-100/e2e_verb_train_trunc_test_sw_s16_768x1_224.py).
_base_ = ["e2e_epic_videomae_l_ft_768x8_160_adapter_noun.py"]

annotation_path = "data/epic_kitchens-100/annotations/epic_kitchens_verb.json"
class_map = "data/epic_kitchens-100/annotations/category_idx_verb.txt"

dataset = dict(
    train=dict(ann_file=annotation_path, class_map=class_map),
    val=dict(ann_file=annotation_path, class_map=class_map),
    test=dict(ann_file=annotation_path, class_map=class_map),
)

evaluation = dict(ground_truth_filename=annotation_path)

model = dict(
    backbone=dict(custom=dict(pretrain="pretrained/vit-large-p16_videomae-epic_verb.pth")),
    rpn_head=dict(num_classes=97, label_smoothing=0.0),
)

work_dir = "exps/epic_kitchens/adatad/e2e_actionformer_videomae_l_ft_768x8_160_verb_adapter"
