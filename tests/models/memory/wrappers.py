"""The tiny backbone-wrapper config the memory-option tests build (a 32 px ViT of 16 frames in clips of 4)."""
import copy
from typing import Any, Dict

_WRAPPER = dict(
    type="mmaction.Recognizer3D",
    backbone=dict(img_size=32, patch_size=16, embed_dims=32, num_heads=2, mlp_ratio=2.0, qkv_bias=True,
                  num_frames=4, total_frames=16, return_feat_map=True),
    data_preprocessor=dict(type="mmaction.ActionDataPreprocessor", mean=[120.0, 110.0, 100.0],
                           std=[60.0, 55.0, 50.0], format_shape="NCTHW"),
    custom=dict(pre_processing_pipeline=[dict(type="Rearrange", keys=["frames"],
                                              ops="b n c (t1 t) h w -> (b t1) n c t h w", t1=4)],
                post_processing_pipeline=[dict(type="Reduce", keys=["feats"], ops="b n c t h w -> b c t",
                                               reduction="mean"),
                                          dict(type="Rearrange", keys=["feats"], ops="(b t1) c t -> b c (t1 t)",
                                               t1=4)],
                frozen_dtype="bf16"),
)


def wrapper_config(**backbone: Any) -> Dict[str, Any]:
    """A fresh copy of the wrapper config, its ViT given ``backbone``'s keys (``type``, ``depth``,
    ``adapter_index``, ...) on top of the shared ones; ``frozen_dtype="bf16"`` in ``custom``.

    Frames ``[B, 1, 3, 16, 32, 32]`` uint8 give features ``[B, 32, 8]``.
    """
    cfg = copy.deepcopy(_WRAPPER)
    cfg["backbone"].update(backbone)
    return cfg
