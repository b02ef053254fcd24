"""The video decoders that :mod:`benchmarks.decode` measures, each behind one interface.

A backend factory imports its decoder (raising if it is not installed) and
returns ``(count, sequential, batch)``: ``count(path)`` the frame count or
None, ``sequential(path, keep)`` ``(frames decoded, {index: frame for index in
keep})`` over the whole video, ``batch(path, indices)`` the frames at
``indices``, ``uint8 [N, H, W, 3]`` RGB. Every one decodes on one thread.
:data:`BACKENDS` names them.
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

__all__ = ["BACKENDS", "opentad_backend", "pyav_backend"]


def opentad_backend():
    from opentad.datasets.video_reader import VideoReader

    def count(path):
        with VideoReader(path) as r:
            return len(r)

    def sequential(path, keep):
        with VideoReader(path) as r:
            n, out = len(r), {}
            for s in range(0, n, 256):  # in chunks, to bound memory
                frames = r.get_batch(np.arange(s, min(s + 256, n))).permute(0, 2, 3, 1).numpy()
                out.update({k: frames[k - s] for k in keep if s <= k < s + len(frames)})
            return n, out

    def batch(path, idx):
        with VideoReader(path) as r:
            return r.get_batch(idx).permute(0, 2, 3, 1).numpy()

    return count, sequential, batch


def pyav_backend():
    import av

    def sequential(path, keep):
        n, out = 0, {}
        with av.open(path) as c:
            c.streams.video[0].thread_count = 1
            for n, f in enumerate(c.decode(video=0), start=1):
                img = f.to_ndarray(format="rgb24")
                if n - 1 in keep:
                    out[n - 1] = img
        return n, out

    def batch(path, idx):  # decode from the start, keep the wanted frames
        wanted, out, last = set(int(i) for i in idx), {}, int(max(idx))
        with av.open(path) as c:
            c.streams.video[0].thread_count = 1
            for k, f in enumerate(c.decode(video=0)):
                if k in wanted:
                    out[k] = f.to_ndarray(format="rgb24")
                if k >= last:
                    break
        return np.stack([out[int(i)] for i in idx])

    return None, sequential, batch


def _decord_backend():
    import decord

    def count(path):
        return len(decord.VideoReader(path, num_threads=1))

    def sequential(path, keep):
        r, out = decord.VideoReader(path, num_threads=1), {}
        for s in range(0, len(r), 256):
            frames = r.get_batch(list(range(s, min(s + 256, len(r))))).asnumpy()
            out.update({k: frames[k - s] for k in keep if s <= k < s + len(frames)})
        return len(r), out

    def batch(path, idx):
        return decord.VideoReader(path, num_threads=1).get_batch(list(idx)).asnumpy()

    return count, sequential, batch


def _opencv_backend():
    import cv2

    cv2.setNumThreads(1)
    params = [cv2.CAP_PROP_N_THREADS, 1] if hasattr(cv2, "CAP_PROP_N_THREADS") else []

    def sequential(path, keep):
        cap, out, n = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params), {}, 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            if n in keep:
                out[n] = img
            n += 1
        cap.release()
        return n, out

    def batch(path, idx):  # seek to the first frame, grab the span, retrieve the wanted ones
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
        first, last, wanted, out = int(min(idx)), int(max(idx)), set(int(i) for i in idx), {}
        cap.set(cv2.CAP_PROP_POS_FRAMES, first)
        for k in range(first, last + 1):
            if not cap.grab():
                break
            if k in wanted:
                out[k] = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
        cap.release()
        return np.stack([out[int(i)] for i in idx])

    return None, sequential, batch


def _torchcodec_backend():
    from torchcodec.decoders import VideoDecoder

    def sequential(path, keep):
        d, out = VideoDecoder(path, num_ffmpeg_threads=1, seek_mode="exact"), {}
        n = d.metadata.num_frames
        for s in range(0, n, 256):
            frames = d.get_frames_in_range(s, min(s + 256, n)).data.permute(0, 2, 3, 1).numpy()
            out.update({k: frames[k - s] for k in keep if s <= k < s + len(frames)})
        return n, out

    def batch(path, idx):
        d = VideoDecoder(path, num_ffmpeg_threads=1, seek_mode="exact")
        return d.get_frames_at([int(i) for i in idx]).data.permute(0, 2, 3, 1).numpy()

    return None, sequential, batch


BACKENDS: Dict[str, Callable] = {
    "opentad-pyav": opentad_backend,
    "pyav-naive": pyav_backend,
    "decord": _decord_backend,
    "opencv": _opencv_backend,
    "torchcodec": _torchcodec_backend,
}
