"""benchmarks.kernels through tools/benchmark_kernels.py on the CPU: every table filled, the errors ordered as
their error models say (fp8's unit roundoff 2^-4 against bf16's 2^-8), and bad options refused."""
import pytest

pytest.importorskip("bitsandbytes")


def test_tiny_cpu_run_fills_the_tables(capsys, load_tool):
    main = load_tool("benchmark_kernels")["main"]
    result = main(["--device", "cpu", "--sizes", "tiny", "--rows", "64", "--repeat", "1"])
    assert [r["layer"] for r in result["fp8"]] == ["qkv", "proj", "fc1", "fc2"]
    assert [(r["k"], r["m"]) for r in result["fp8"]] == [(64, 192), (64, 64), (64, 256), (256, 64)]
    for r in result["fp8"]:
        # relative errors of random products: bf16 at most ~2^-8 per value, fp8 ~2^-4 per operand
        assert 0 < r["bf16_err"] < 2.0**-6 and 2.0**-8 < r["fp8_err"] < 2.0**-2
        assert r["bf16_ms"] > 0 and r["fp8_ms"] > 0 and r["fp8_all_step_ms"] > 0
        assert 2.0**-8 < r["fp8_all_err"] < 2.0**-2  # the same forward as "forward"
    assert [r["k"] for r in result["quantizer"]] == [64, 256]
    assert result["residual"][0]["width"] == 64 and result["residual"][0]["fused_host_us"] > 0
    out = capsys.readouterr().out
    assert "| tiny | fc2 | 256 x 64 | 64 |" in out and "| tiny | [64, 64] |" in out


def test_bad_options_are_refused(capsys, load_tool):
    main = load_tool("benchmark_kernels")["main"]
    with pytest.raises(SystemExit):
        main(["--device", "cpu", "--sizes", "tiny,xl"])
    assert "--sizes ['xl']: choose from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--device", "cpu", "--rows", "0"])
    assert "--rows must be >= 1, got 0" in capsys.readouterr().err


def test_attention_table_times_each_cpu_backend(load_tool):
    main = load_tool("benchmark_kernels")["main"]
    result = main(["--device", "cpu", "--sizes", "tiny", "--rows", "128", "--repeat", "1"])
    # tiny: 2 heads of 64 / 2 dims, 64 tokens a clip: 128 rows are 2 clips
    assert [(r["backend"], r["shape"]) for r in result["attention"]] == [
        ("flash", (2, 2, 64, 32)), ("math", (2, 2, 64, 32))]
    assert all(r["forward_ms"] > 0 and r["both_ms"] > 0 for r in result["attention"])
    assert result["fusions"] == []


def test_fusion_rows_compare_each_mode_with_eager(monkeypatch, capsys):
    """The fusion table's own check, with stand-in compilers: an exact one matches, one that moves the row
    scales by 1% does not (the table would say NO), one that moves them by 0.1% (within a bf16 step) does; the
    one-pass column the same way."""
    import torch
    from benchmarks import kernels_fused
    exact = kernels_fused.fusion_rows("tiny", 64, 256, 32, torch.device("cpu"), 1, compile_fn=lambda fn, mode: fn)
    assert [r["fusion"] for r in exact] == ["layer norm + fp8 rows, 64", "GELU + fp8 rows, 256",
                                            "gelu_backward + fp8 rows, 256"]
    assert all(r[f"{m}_matches"] and r[f"{m}_ms"] > 0 for r in exact for m in kernels_fused.FUSION_MODES)
    assert not any("onepass_ms" in r for r in exact) and all(r["columns"] == ["default", "multi-kernel"]
                                                             for r in exact)  # no one-pass kernels on the CPU

    def moved(by):
        def scaled(fn):
            return lambda *a: tuple(t * (1 + by) if t.dtype == torch.float32 else t for t in fn(*a))
        return scaled

    wrong = kernels_fused.fusion_rows("tiny", 64, 256, 32, torch.device("cpu"), 1,
                                      compile_fn=lambda fn, mode: moved(0.01)(fn))
    assert [r["default_matches"] for r in wrong] == [False, False, False]
    close = kernels_fused.fusion_rows("tiny", 64, 256, 32, torch.device("cpu"), 1,
                                      compile_fn=lambda fn, mode: moved(0.001)(fn))
    assert all(r["default_matches"] for r in close)

    eager = {f[1]: f[2] for f in kernels_fused._fusions(64, 256, 32, lambda *s: torch.zeros(s))}
    onepass = dict(norm=eager["norm"], gelu=moved(0.01)(eager["gelu"]), gelu_backward=eager["gelu_backward"])
    floor = dict(gelu=moved(0.5)(eager["gelu"]))  # not compared: its values never make a row NO
    rows = kernels_fused.fusion_rows("tiny", 64, 256, 32, torch.device("cpu"), 1, compile_fn=lambda fn, mode: fn,
                                     onepass={"onepass": onepass, kernels_fused.FLOOR: floor})
    assert [r["onepass_matches"] for r in rows] == [True, False, True] and all(r["onepass_ms"] > 0 for r in rows)
    assert [f"{kernels_fused.FLOOR}_ms" in r for r in rows] == [False, True, False]
    assert not any(f"{kernels_fused.FLOOR}_matches" in r for r in rows)
    kernels_fused.print_tables([], rows)
    table = capsys.readouterr().out
    assert "| onepass (ms) | floor (ms) | same values |" in table and table.count("| NO |") == 1
    # the floor moves what GELU's fusion must: 2 bytes a value read, 1 written, 4 a row for the scale
    h = torch.zeros(32, 256, dtype=torch.bfloat16)
    assert kernels_fused.traffic_copy(h).numel() * 2 == 32 * 256 * 3 + 32 * 4
