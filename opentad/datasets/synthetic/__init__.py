"""Synthetic THUMOS-format dataset: the project's embedded default data.

Videos of moving shapes whose motion pattern is the action class, with
annotations in OpenTAD's THUMOS JSON layout and snippet features made from
the ground truth. Import explicitly (``opentad.datasets.synthetic``); the
generator is run by ``tools/prepare_data/synthetic/generate.py``. See
``docs/synthetic_data.md``.
"""
from opentad.datasets.synthetic.generate import (
    ANNOTATION_FILE,
    CLASS_FILE,
    CLASSIFIER_FILE,
    FEATURE_DIR,
    MANIFEST_FILE,
    VIDEO_DIR,
    GenerationReport,
    generate_dataset,
    write_video_files,
)
from opentad.datasets.synthetic.patterns import AMBIGUOUS_LABEL, CLASS_NAMES, PATTERNS
from opentad.datasets.synthetic.settings import FEATURE_STRIDE, FPS, PRESETS, SyntheticSettings, settings_from_preset

__all__ = [
    "ANNOTATION_FILE",
    "CLASS_FILE",
    "CLASSIFIER_FILE",
    "FEATURE_DIR",
    "MANIFEST_FILE",
    "VIDEO_DIR",
    "GenerationReport",
    "generate_dataset",
    "write_video_files",
    "AMBIGUOUS_LABEL",
    "CLASS_NAMES",
    "PATTERNS",
    "FEATURE_STRIDE",
    "FPS",
    "PRESETS",
    "SyntheticSettings",
    "settings_from_preset",
]
