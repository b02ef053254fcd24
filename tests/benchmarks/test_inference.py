"""tools/benchmark_infer.py on the CPU: one generated video through the tiny synthetic detector, and its row.

The row's figures are timings, so the test checks what ties them together rather than their values: frames/s
and "realtime" both come from the one detect time, so their ratio is the video's frame rate, up to their
printed rounding (frames/s to 1, realtime to 0.1): |ratio - fps| <= fps * (0.5 / frames_s + 0.05 / realtime).
"""
import pytest

pytest.importorskip("av")

CONFIG = "configs/adatad/synthetic/e2e_synthetic_vit_tiny_adapter.py"


def test_one_video_gives_one_consistent_row(load_tool, capsys):
    tool = load_tool("benchmark_infer")
    tool["main"]([CONFIG, "--minutes", "0.05", "--size", "96x64", "--fps", "30", "--device", "cpu"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert lines[0] == ("| config | device | video | load s | detect s | frames/s | realtime | peak GiB "
                        "| detections |")
    cells = [c.strip() for c in lines[1].strip("|").split("|")]
    name, device, video, load_s, detect_s, frames_s, realtime, peak, detections = cells
    assert (name, device, video, peak) == ("e2e_synthetic_vit_tiny_adapter.py", "cpu", "0.1 min 96x64", "nan")
    assert float(load_s) >= 0 and float(detect_s) >= 0 and int(detections) >= 0
    fps, rate, speed = 30, float(frames_s), float(realtime.rstrip("x"))
    assert rate > 0 and speed > 0
    assert abs(rate / speed - fps) <= fps * (0.5 / rate + 0.05 / speed)
