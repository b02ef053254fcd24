"""The one place this project imports bitsandbytes.

bitsandbytes logs a WARNING at import on some CPUs about an optional
package this project does not need; :func:`import_bitsandbytes` lowers that
one record to DEBUG first (:mod:`opentad.utils.bnb_log` says why).
"""
from __future__ import annotations

from types import ModuleType

from opentad.utils.bnb_log import lower_optional_kernel_notice

__all__ = ["import_bitsandbytes"]


def import_bitsandbytes() -> ModuleType:
    """Import bitsandbytes (lazily: importing opentad must not need it), its optional-kernel warning at DEBUG.

    Returns:
        The ``bitsandbytes`` module.

    Raises:
        ImportError: bitsandbytes is not installed.
    """
    lower_optional_kernel_notice()
    import bitsandbytes

    return bitsandbytes
