"""Helpers shared by the models: segment overlaps, encodings, masks.

Import from the submodules (``iou_tools``, ``bbox_tools``, ``misc``,
``post_processing``) directly.
"""
