"""A cache of decoded, stride-sampled, resized frames for end-to-end training.

Decoding a random 768-frame window of a THUMOS video costs about 2 CPU-seconds
(``docs/benchmarks.md``, "Video decoding"): H.264 must decode the 3,072
frames the window spans to return every 4th. The cache decodes each video
once at the sampling stride and training resolution (:mod:`.build`), stores
the frames as raw uint8 or JPEG (:mod:`.shards`) with a manifest per video
that catches stale and incomplete entries (:mod:`.manifest`), and
:class:`~opentad.datasets.transforms.cached_frames.LoadCachedFrames` reads
windows back. See ``docs/data_pipeline.md``.
"""
from .build import BuildReport, build_cache, cache_video, check_cache, entry_is_fresh
from .manifest import FORMAT_VERSION, FORMATS, CacheError, CacheSpec, check_entry, load_manifest, manifest_path
from .shards import open_reader

__all__ = [
    "BuildReport",
    "CacheError",
    "CacheSpec",
    "FORMATS",
    "FORMAT_VERSION",
    "build_cache",
    "cache_video",
    "check_cache",
    "check_entry",
    "entry_is_fresh",
    "load_manifest",
    "manifest_path",
    "open_reader",
]
