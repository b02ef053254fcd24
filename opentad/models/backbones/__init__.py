"""Video backbones and the end-to-end backbone wrapper, registered in :data:`opentad.registry.BACKBONES`.

* :mod:`.video_backbone`: :class:`VideoBackbone` (the hooks every video backbone has);
* :mod:`.vit`: :class:`VideoViT` (shared VideoMAE ViT) and :class:`VisionTransformerCP`;
* :mod:`.vit_adapter`: :class:`VisionTransformerAdapter` (AdaTAD);
* :mod:`.vit_adapter_qlora`: :class:`VisionTransformerQLoRA` (QLoRA-AdaTAD);
* :mod:`.vit_ladder`: :class:`VisionTransformerLadder` (side-tuning);
* :mod:`.backbone_wrapper`: :class:`BackboneWrapper` (``mmaction.Recognizer3D``), its ``custom``
  section parsed by :class:`WrapperOptions` (:mod:`.wrapper_options`);
* :mod:`.data_preprocessor`: :class:`ActionDataPreprocessor`;
* :mod:`.augment_preprocessor`: :class:`AugmentDataPreprocessor` (batched training augmentation);
* :mod:`.r2plus1d_tsp`: :class:`ResNet2Plus1d_TSP` (TSP's R(2+1)D, end-to-end ETAD);
* :mod:`.resnet3d`: :class:`ResNet3d` (``mmaction.ResNet3d``, I3D ResNet of the end-to-end AFSD configs);
* :mod:`.pretrained`: checkpoint conversion and loading.
"""
from .augment_preprocessor import AugmentDataPreprocessor
from .backbone_wrapper import BackboneWrapper, VideoRecognizer
from .data_preprocessor import ActionDataPreprocessor
from .resnet3d import ResNet3d
from .r2plus1d_tsp import ResNet2Plus1d_TSP
from .video_backbone import VideoBackbone
from .vit import VideoViT, VisionTransformerCP
from .vit_adapter import VisionTransformerAdapter
from .vit_adapter_qlora import QLoRAAdapter, VisionTransformerQLoRA
from .vit_ladder import VisionTransformerLadder
from .wrapper_options import WrapperOptions

__all__ = [
    "ActionDataPreprocessor",
    "AugmentDataPreprocessor",
    "BackboneWrapper",
    "VideoBackbone",
    "VideoRecognizer",
    "VideoViT",
    "VisionTransformerAdapter",
    "VisionTransformerCP",
    "VisionTransformerLadder",
    "VisionTransformerQLoRA",
    "QLoRAAdapter",
    "ResNet3d",
    "ResNet2Plus1d_TSP",
    "WrapperOptions",
]
