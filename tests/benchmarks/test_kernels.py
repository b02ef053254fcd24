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
