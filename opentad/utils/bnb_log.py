"""bitsandbytes' warning about its optional ``kernels`` package, logged at DEBUG instead of WARNING.

bitsandbytes 0.50, on CPUs with AVX512-BF16, tries when it is imported to
fetch a fused 4-bit CPU matmul from Hugging Face's optional ``kernels``
package and, when that package is not installed, logs on the
``bitsandbytes.backends.cpu.ops`` logger::

    WARNING Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. ...

This project never calls that kernel: its 4-bit layers dequantize their
weight (``opentad/models/bricks/dequant_4bit.py``) and multiply in float
(``quant.py``). bitsandbytes is imported by this project's quantized layers
(``opentad.models.bricks.bnb``) and, for every run, by mmengine's optimizer
registry (``mmengine.optim`` registers bitsandbytes' optimizers), which
:data:`opentad.registry.OPTIMIZERS` loads; both call
:func:`lower_optional_kernel_notice` first. Only that record is changed, to
DEBUG (shown when that logger is enabled for DEBUG); every other bitsandbytes
record is left as it is. docs/install.md says the same for users.
"""
from __future__ import annotations

import logging

__all__ = ["lower_optional_kernel_notice", "KERNELS_LOGGER", "KERNELS_MESSAGE"]

#: the logger of bitsandbytes' CPU back-end (``logging.getLogger(__name__)`` in bitsandbytes/backends/cpu/ops.py)
KERNELS_LOGGER = "bitsandbytes.backends.cpu.ops"
#: how the record about the missing optional ``kernels`` package begins
KERNELS_MESSAGE = "Failed to load CPU gemm_4bit_forward from kernels-community"


class _OptionalKernelAtDebug(logging.Filter):
    """Turn the missing-``kernels`` WARNING into a DEBUG record; pass every other record unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or not str(record.msg).startswith(KERNELS_MESSAGE):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        # the logger's level was checked against WARNING before this filter ran: check it again for DEBUG
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def lower_optional_kernel_notice() -> None:
    """Install the filter on bitsandbytes' CPU logger (once); call it before bitsandbytes is imported.

    The logger is created here by name if bitsandbytes has not created it
    yet; bitsandbytes then gets the same object. Without effect when
    bitsandbytes was imported before (the record is logged at import).
    """
    log = logging.getLogger(KERNELS_LOGGER)
    if not any(isinstance(f, _OptionalKernelAtDebug) for f in log.filters):
        log.addFilter(_OptionalKernelAtDebug())
