"""VideoReader: frame counts, random access against a sequential decode, errors naming the file, and
truncated files: the decodable beginning is read, and a warning names the file (issue #16).

A truncated mp4 is made the way the tester found it: the index (moov) at the
front (``movflags=faststart``), bytes cut off the end. The reference for what
is read comes from the *complete* file's packets: a packet survives the cut
when its last byte lies before it (``pos + size <= cut``); with B-frames some
surviving frames come after lost ones, so the frames to read are those whose
pts lies below the dts of the first lost packet (every lost frame's pts is at
least that), which must be the complete video's first frames 0, 1, ..., N-1. Below a band of noise (which gives
every packet a real size), frame ``i`` is a flat grey of level ``8 + 4 i``.
"""
import logging
import os
import shutil

import av
import numpy as np
import pytest
import torch

from opentad.datasets.video_reader import VideoReader, VideoReadError

NUM_FRAMES, FPS = 60, 30


def write_faststart(path, num_frames=NUM_FRAMES):
    """Noisy frames (so that every packet has a real size) over the grey level of their index; index in front."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "8", "bf": "2", "crf": "18"}
        for i in range(num_frames):
            img = np.full((48, 64, 3), 8 + 4 * i, dtype=np.uint8)
            img[:8] = rng.integers(0, 255, (8, 64, 3), dtype=np.uint8)  # noise on top rows only
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode(None))
    return str(path)


def frames_before_the_cut(path, cut):
    """``(readable, surviving)`` frame numbers of the complete file cut at byte ``cut`` (module docstring)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        per_frame = 1 / (stream.time_base * FPS)
        packets = [(p.pts, p.dts, p.pos + p.size <= cut) for p in container.demux(stream) if p.size]
    first_lost_dts = next(dts for _, dts, survives in packets if not survives)
    surviving = sorted(int(round(pts / per_frame)) for pts, _, survives in packets if survives)
    readable = sorted(int(round(pts / per_frame)) for pts, _, survives in packets if survives and pts < first_lost_dts)
    return readable, surviving


def top_cropped_levels(imgs):
    """The frame number of each decoded ``[T, 3, H, W]`` frame, from its grey level below the noisy top rows."""
    means = imgs[:, :, 16:, :].float().mean(dim=(1, 2, 3))
    return [int(round((m.item() - 8) / 4)) for m in means]


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "video_reader" in r.name]


def pick_cut(path, with_gap):
    """A byte offset (20-90 % of the file) after which the surviving frames have a gap (a B-frame lost while a
    later P-frame survived), or have none."""
    size = len(open(path, "rb").read())
    for fraction in np.arange(0.2, 0.9, 0.01):
        cut = int(size * fraction)
        _, surviving = frames_before_the_cut(path, cut)
        if (surviving != list(range(len(surviving)))) == with_gap:
            return cut
    raise AssertionError(f"no cut {'with' if with_gap else 'without'} a gap in {path}")


@pytest.mark.parametrize("with_gap", [True, False], ids=["B-frame-lost", "prefix"])
def test_truncated_faststart_mp4_reads_its_decodable_frames_with_one_warning(tmp_path, caplog, with_gap):
    full = write_faststart(tmp_path / "full.mp4")
    cut = pick_cut(full, with_gap)
    truncated = tmp_path / f"cut_{cut}.mp4"
    truncated.write_bytes(open(full, "rb").read()[:cut])
    expected, surviving = frames_before_the_cut(full, cut)
    assert 4 < len(expected) < NUM_FRAMES - 4  # the cut falls well inside the video
    assert expected == list(range(len(expected)))  # the first frames, none missing
    assert len(surviving) - len(expected) <= 3  # at most the B-frame depth (bf=2) plus the cut one are given up

    with caplog.at_level(logging.WARNING, logger="opentad"):
        with VideoReader(str(full)) as reader:
            assert len(reader) == NUM_FRAMES
        assert warnings_of(caplog) == []  # a complete file: no warning
        with VideoReader(str(truncated)) as reader:
            assert len(reader) == len(expected)
            assert top_cropped_levels(reader.get_batch(range(len(reader)))) == expected
            assert reader.declared_duration == pytest.approx(NUM_FRAMES / FPS, abs=0.5 / FPS)
        with VideoReader(str(truncated)) as reader:  # a second opening (next sample): no second warning
            assert top_cropped_levels(reader.get_batch([len(reader) - 1, 0])) == [expected[-1], expected[0]]
    messages = warnings_of(caplog)
    assert len(messages) == 1
    assert str(truncated) in messages[0]
    assert f"declares {NUM_FRAMES / FPS:.3f} s" in messages[0]
    assert f"{len(expected) / FPS:.3f} s ({len(expected)} frames" in messages[0]


def test_truncated_mp4_with_the_index_at_the_end_is_unreadable(tmp_path):
    full = write_faststart(tmp_path / "full.mp4")
    with av.open(full) as src, av.open(str(tmp_path / "moov_last.mp4"), "w", format="mp4") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = (tmp_path / "moov_last.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="cut.mp4"):
        VideoReader(str(tmp_path / "cut.mp4"))


def test_complete_files_without_stream_durations_read_whole_and_quietly(tmp_path, caplog):
    """Matroska declares no stream duration (the file's is compared); a complete file gives every frame."""
    path = str(tmp_path / "clip.mkv")
    with av.open(path, "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "8", "bf": "2"}
        for i in range(NUM_FRAMES):
            img = np.full((48, 64, 3), 8 + 4 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode(None))
    with caplog.at_level(logging.WARNING, logger="opentad"), VideoReader(path) as reader:
        assert reader.declared_duration == pytest.approx(NUM_FRAMES / FPS, abs=1.5 / FPS)
        assert len(reader) == NUM_FRAMES and reader.dropped_frames == 0
        assert top_cropped_levels(reader.get_batch(range(NUM_FRAMES))) == list(range(NUM_FRAMES))
    assert warnings_of(caplog) == []


def _reference_frames(path):
    """Every frame, decoded front to back with plain PyAV: uint8 [N, H, W, 3]."""
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_reader_counts_frames_and_fps(video_dir, vt):
    with VideoReader(os.path.join(video_dir, "clip.mp4")) as r:
        assert len(r) == 60 and abs(r.avg_fps - 30.0) < 1e-6 and (r.height, r.width) == (48, 64)


@pytest.mark.parametrize("indices", [[0], [59], [5, 3, 5, 40, 0], list(range(60)), [17, 9, 33, 33, 58, 1]])
def test_reader_random_access_matches_sequential_decode(video_dir, vt, indices):
    path = os.path.join(video_dir, "clip.mp4")
    ref = _reference_frames(path)
    with VideoReader(path) as r:
        out = r.get_batch(indices)
        again = r.get_batch(indices[::-1])  # a second call on the same reader, going backwards
    assert out.dtype == torch.uint8 and out.shape == (len(indices), 3, 48, 64)
    assert np.array_equal(out.permute(0, 2, 3, 1).numpy(), ref[indices])
    assert np.array_equal(again.permute(0, 2, 3, 1).numpy(), ref[indices[::-1]])
    assert vt.frame_levels(out) == [i % 60 for i in indices]


def test_reader_with_threads_and_without_bframes(tmp_path, vt):
    path = vt.write_video(tmp_path / "nob.mp4", num_frames=30, gop=5, bframes=False)
    with VideoReader(path, num_threads=2) as r:
        assert vt.frame_levels(r.get_batch([29, 0, 12, 13, 4])) == [29, 0, 12, 13, 4]


def test_reader_index_out_of_range_names_file(video_dir):
    with VideoReader(os.path.join(video_dir, "clip.mp4")) as r:
        with pytest.raises(IndexError, match="clip.mp4"):
            r.get_batch([60])


def test_truncated_video_error_names_file(tmp_path, video_dir):
    path = str(tmp_path / "cut.mp4")
    shutil.copy(os.path.join(video_dir, "clip.mp4"), path)
    with open(path, "r+b") as f:  # keep the header, damage the frame data
        size = os.path.getsize(path)
        f.seek(size // 3)
        f.write(os.urandom(size // 3))
    with pytest.raises((VideoReadError, IndexError)) as info:
        with VideoReader(path) as r:
            r.get_batch(np.arange(len(r)))
    assert "cut.mp4" in str(info.value)


def test_pyav_without_metadata_errors_opens_the_file(video_dir, monkeypatch):
    """PyAV 19 removed ``av.open``'s ``metadata_errors`` keyword (a TypeError there): the reader opens the file
    without it and reads the same frames; any other TypeError is not swallowed."""
    path = os.path.join(video_dir, "clip.mp4")
    real_open, calls = av.open, []

    def open_19(file, *args, **kwargs):
        calls.append(sorted(kwargs))
        if "metadata_errors" in kwargs:
            raise TypeError("open() got an unexpected keyword argument 'metadata_errors'")
        return real_open(file, *args, **kwargs)

    with VideoReader(path) as want:
        monkeypatch.setattr(av, "open", open_19)
        with VideoReader(path) as got:
            assert calls == [["metadata_errors"], []]
            assert len(got) == len(want) and got.avg_fps == want.avg_fps
            assert torch.equal(got.get_batch([0, len(got) - 1]), want.get_batch([0, len(want) - 1]))

    def open_broken(file, *args, **kwargs):
        raise TypeError("open() argument 'file' must be str")

    monkeypatch.setattr(av, "open", open_broken)
    with pytest.raises(TypeError, match="must be str"):
        VideoReader(path)
