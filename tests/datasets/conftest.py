"""Tiny test videos made with PyAV: frame ``i`` is a flat grey of level ``level(i)``.

Flat frames survive H.264 almost exactly, so a decoded frame's mean tells
which frame it is.
"""
import os

import av
import numpy as np
import pytest

NUM_FRAMES = 60
WIDTH, HEIGHT = 64, 48


def level(i):
    """Grey level of frame ``i`` (distinct for i < 60, 4 levels apart)."""
    return 8 + 4 * (int(i) % 60)


def write_video(path, num_frames=NUM_FRAMES, size=(WIDTH, HEIGHT), gop=8, bframes=True):
    w, h = size
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2" if bframes else "0"}
    for i in range(num_frames):
        img = np.full((h, w, 3), level(i), dtype=np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return str(path)


def frame_levels(imgs):
    """Which frame each decoded ``[T, 3, H, W]`` frame is, by its mean grey level."""
    means = imgs.float().mean(dim=(1, 2, 3))
    return [int(round((m.item() - 8) / 4)) for m in means]


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory):
    """A folder with ``clip.mp4`` (60 frames, GOP 8, B-frames) and ``broken.mp4`` (not a video)."""
    folder = tmp_path_factory.mktemp("videos")
    write_video(folder / "clip.mp4")
    with open(folder / "broken.mp4", "wb") as f:
        f.write(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    return str(folder)


@pytest.fixture(scope="session")
def vt():
    """The helpers above, for test modules (conftest is not importable by name)."""
    import types

    return types.SimpleNamespace(level=level, frame_levels=frame_levels, write_video=write_video)
