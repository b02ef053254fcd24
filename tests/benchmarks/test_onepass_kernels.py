"""The one-pass layer-norm kernel of the kernel benchmark against the eager ops (checks in ``onepass_cases.py``,
a fresh process each: Triton picks its CPU interpreter when first imported)."""
from pathlib import Path

import pytest
import torch

from tests.models.memory.kernel_cases import run_cases

CASES = Path(__file__).with_name("onepass_cases.py")
#: 3 shapes x 5 checks, the eps case's 5, a hand-worked row, no rows, 4 refusals
AT_LEAST = 15 + 5 + 1 + 1 + 4


def test_the_kernels_in_tritons_interpreter_follow_the_eager_ops():
    pytest.importorskip("triton")
    run_cases(CASES, "cpu", interpret=True, at_least=AT_LEAST)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_kernels_on_cuda_follow_the_eager_ops():
    run_cases(CASES, "cuda", interpret=False, at_least=AT_LEAST)
