"""benchmarks.step_profile: kernel names sorted into categories, the union of busy intervals by hand, and one
profiled CPU function whose operators are known."""
import pytest
import torch

from benchmarks.step_profile import (category_of, format_breakdown, format_gaps, idle_gaps, kernel_breakdown,
                                      merged_length)


@pytest.mark.parametrize("name, category", [
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64>>", "attention"),
    ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80", "attention"),
    ("kDequantizeBlockwise<__nv_bfloat16, 512, 64, 8, 2>", "dequant"),
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", "conv"),
    ("nvjet_tst_256x128_64x4_2x1_v_bz_coopA_NNT", "gemm"),
    ("ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_64x3_tn", "gemm"),
    ("aten::addmm", "gemm"),
    ("Memcpy DtoH (Device -> Pinned)", "copy"),
    ("void at::native::vectorized_elementwise_kernel<8, at::native::bfloat16_copy_kernel_cuda", "cast"),
    ("void at::native::elementwise_kernel<128, 4, gpu_kernel_impl_nocast<direct_copy_kernel_cuda", "cast"),
    ("triton_per_fused_add_native_layer_norm_0", "compiled"),
    ("triton_poi_fused_convolution_0", "compiled"),  # Inductor's, whatever op it fuses
    ("triton_tem_fused_flash_attention_1", "compiled"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "other"),
])
def test_category_of_names(name, category):
    assert category_of(name) == category


@pytest.mark.parametrize("intervals, length", [
    ([], 0.0),
    ([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)], 4.0),  # [0, 3] and [5, 6]
    ([(2.0, 3.0), (0.0, 10.0)], 10.0),  # one inside the other, given out of order
    ([(0.0, 1.0), (1.0, 2.0)], 2.0),  # touching
])
def test_merged_length_by_hand(intervals, length):
    assert merged_length(intervals) == length


def test_cpu_breakdown_of_known_operators():
    """Four matrix products and one GELU: the products land in ``gemm``, the GELU in ``other``; single-threaded
    operators run one after another, so their self times add up to at most the wall time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_known_operators()
    finally:
        torch.set_num_threads(threads)


def _check_known_operators():
    a = torch.randn(128, 128)

    def fn():
        y = a
        for _ in range(4):
            y = torch.mm(y, a)
        return torch.nn.functional.gelu(y)

    fn()
    prof = kernel_breakdown(fn, torch.device("cpu"))
    assert prof["ms"]["gemm"] > 0 and prof["ms"]["other"] > 0 and prof["kernels"] >= 5
    assert sum(prof["ms"].values()) <= prof["wall_ms"] and prof["busy_ms"] <= prof["wall_ms"]
    names = [name for name, _ in prof["top"]]
    assert "aten::mm" in names and len(names) == len(set(names)) and len(names) <= 12
    assert [t for _, t in prof["top"]] == sorted((t for _, t in prof["top"]), reverse=True)
    table = format_breakdown([dict(size="s", config="QLoRA", profile=prof), dict(size="s", config="x")])
    assert table.count("\n") == 2 and "| s | QLoRA |" in table and "| gemm |" in table


def test_idle_gaps_by_hand():
    """Device events on two streams (overlaps merged) with gaps of 30, 5 and 100 us; the host ops cover the gaps'
    middles at two depths, and the shortest covering one names each gap."""
    spans = [(0.0, 50.0, "gemm"), (10.0, 70.0, "memcpy"),  # merged to [0, 70]: last to end is memcpy
             (100.0, 120.0, "gelu"),  # gap 30 after memcpy
             (125.0, 130.0, "norm"),  # gap 5: under the floor, not counted
             (230.0, 240.0, "attn")]  # gap 100
    host = [(0.0, 300.0, "step"), (160.0, 200.0, "aten::item"), (80.0, 90.0, "aten::add")]
    found = idle_gaps(spans[::-1], host, top=5)  # order given does not matter
    assert found["count"] == 2 and found["total"] == 130.0
    assert found["gaps"] == [(100.0, "norm", "attn", "aten::item"), (30.0, "memcpy", "gelu", "aten::add")]
    assert idle_gaps(spans, host, top=1)["gaps"] == [(100.0, "norm", "attn", "aten::item")]
    assert idle_gaps(spans[:1])["count"] == 0 and idle_gaps([])["gaps"] == []
    row = dict(size="g", config="QLoRA", profile=dict(gap_count=2, gap_ms=0.13, gaps=[(0.1, "norm", "attn", "")]))
    text = format_gaps([row, dict(size="g", config="AdaTAD")])
    assert text.count("\n") == 1 and "2 idle gaps" in text and "`norm` -> `attn`; host in `?`" in text
