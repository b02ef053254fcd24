"""Detection post-processing: NMS, conversion to seconds, sliding-window merging.

See docs/postprocessing.md for the exact behaviour (it follows upstream OpenTAD,
on which published mAP figures depend).
"""

from .nms import batched_nms, nms_1d, seg_voting, soft_nms_1d
from .classifier import build_classifier
from .classifier_files import ClassifierFileError
from .utils import boundary_choose, convert_to_seconds, format_detections, merge_window_results, select_topk_predictions

__all__ = [
    "build_classifier",
    "ClassifierFileError",
    "boundary_choose",
    "batched_nms",
    "nms_1d",
    "soft_nms_1d",
    "seg_voting",
    "convert_to_seconds",
    "select_topk_predictions",
    "format_detections",
    "merge_window_results",
]
