"""benchmarks.kernel_instructions: a SASS listing counted by hand, and the fused activation kernel compiled for
Hopper on this machine (no GPU): the integer conversions must cost instructions the native ones do not."""
import importlib.util
import os

import pytest

from benchmarks import kernel_instructions as K

SASS = """
        code for sm_90
                Function : gelu_rows_kernel
        /*0000*/                   LDC R1, c[0x0][0x28] ;                  /* 0x00000a00ff017b82 */
        /*0010*/                   S2R R0, SR_CTAID.X ;                    /* 0x0000000000007919 */
        /*0020*/               @P0 FFMA R2, R3, R4, R5 ;                   /* 0x0000000403027223 */
        /*0030*/              @!P1 FFMA.FTZ R2, R3, R4, R5 ;               /* 0x0000000403027223 */
        /*0040*/                   MUFU.EX2 R6, R6 ;                       /* 0x0000000600067308 */
        /*1000*/                   F2FP.SATFINITE.E4M3.F32.PACK_AB R7, R8, R9 ;
        /*1010*/                   EXIT ;                                  /* 0x000000000000794d */
        /*1020*/                   BRA 0x1020;                             /* 0xfffffffc00fc7947 */
        /*1030*/                   NOP;                                    /* 0x0000000000007918 */
        /*1040*/                   NOP;                                    /* 0x0000000000007918 */
"""


def test_count_sass_by_hand():
    """Predicated instructions count under their opcode, modifiers dropped, NOP padding and headers left out."""
    assert K.count_sass(SASS) == {"LDC": 1, "S2R": 1, "FFMA": 2, "MUFU": 1, "F2FP": 1, "EXIT": 1, "BRA": 1}


def _can_compile() -> bool:
    if importlib.util.find_spec("triton") is None or importlib.util.find_spec("triton.backends.nvidia") is None:
        return False
    import triton.backends.nvidia as nvidia

    return os.path.exists(os.path.join(os.path.dirname(nvidia.__file__), "bin", "cuobjdump"))


@pytest.mark.skipif(not _can_compile(), reason="needs Triton's NVIDIA backend with its cuobjdump")
def test_the_activation_kernel_compiled_for_hopper(capsys, load_tool):
    """GELU's kernel on rows of 64 (one piece of 64, one warp): the native conversions issue fewer instructions
    than the integer ones (the same rounding written in integer arithmetic), ``per_value`` is the count over the
    values a program's threads hold, and the command line prints both kernels' rows."""
    native = K.activation_instructions(64, backward=False)
    integer = K.activation_instructions(64, backward=False, native=False)
    assert (native["part"], native["parts"], native["warps"]) == (64, 1, 1)
    assert 0 < native["instructions"] < integer["instructions"]
    assert native["per_value"] == native["instructions"] * 32 / 64
    assert native["opcodes"].get("MUFU", 0) >= 1 and native["opcodes"].get("F2FP", 0) >= 1  # ex2; e4m3 pack
    table = load_tool("count_instructions")["main"](["--cols", "64", "--norm-cols", "48"])
    assert table.count("| GELU | 64 |") == 1 and table.count("| gelu_backward | 64 |") == 1
    assert table.count("| layer norm | 48 |") == 1
    assert table in capsys.readouterr().out


@pytest.mark.skipif(not _can_compile(), reason="needs Triton's NVIDIA backend with its cuobjdump")
def test_the_layer_norm_kernel_compiled_for_hopper():
    """The fused layer norm on g's 1408 values (three pieces of 512, one warp): ``per_value`` over the 1536 lanes,
    a correctly rounded square root (no ``MUFU.RSQ`` approximation of ``rstd``), the e4m3 pack; integer
    conversions cost more."""
    native, integer = K.norm_instructions(1408), K.norm_instructions(1408, native=False)
    assert (native["kernel"], native["part"], native["parts"], native["warps"]) == ("layer norm", 512, 3, 1)
    assert native["per_value"] == native["instructions"] * 32 / 1536
    assert 0 < native["instructions"] < integer["instructions"]
    assert native["opcodes"].get("F2FP", 0) >= 1 and native["opcodes"].get("MUFU", 0) >= 1
