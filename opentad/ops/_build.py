"""Which native ops ``setup.py`` builds, and a ``build_ext`` that never fails the install.

Loaded by ``setup.py`` with ``runpy`` (opentad is not importable while it is
being installed), so it imports only the standard library at module level.

``OPENTAD_EXT`` selects what is built:

* ``auto`` (default): the C++ ops when a C++ compiler is found; the CUDA ops
  when, in addition, ``nvcc`` is found, PyTorch is a CUDA build, and a GPU is
  visible or ``TORCH_CUDA_ARCH_LIST`` names the architectures to build for.
  (A machine with nvcc but no GPU, like a CI runner, skips the slow CUDA
  build: nothing there could run or test it.)
* ``all``: every op it can try; the CUDA ops without a visible GPU are built
  for ``TORCH_CUDA_ARCH_LIST`` or, when that is unset, for sm_80 and sm_90
  plus PTX.
* ``none``: nothing; every op uses its pure-PyTorch fallback.

An op that cannot be built prints one warning naming it and the reason, and
the install carries on; ``python -m opentad.ops`` lists the result.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
import time
from typing import Dict, List, Optional, Tuple

MODES = ("auto", "all", "none")
DEFAULT_CUDA_ARCH_FLAGS = [
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_90,code=compute_90",
]
CXX_FLAGS = ["-O2", "-ffp-contract=off"]  # no fused multiply-add, as in the fallbacks
NVCC_FLAGS = ["-O2", "--expt-relaxed-constexpr"]


def warn(message: str) -> None:
    """One line on stderr (pip shows it with ``-v``)."""
    sys.stderr.write(f"WARNING [opentad native ops] {message}\n")


def build_mode() -> str:
    """``OPENTAD_EXT``, validated.

    Raises:
        SystemExit: the value is not one of :data:`MODES`.
    """
    mode = os.environ.get("OPENTAD_EXT", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise SystemExit(f"OPENTAD_EXT={os.environ['OPENTAD_EXT']!r} is not valid; use one of {list(MODES)}")
    return mode


def _cxx_missing() -> Optional[str]:
    compiler = os.environ.get("CXX", "c++").split()[0]
    return None if shutil.which(compiler) else f"no C++ compiler found ({compiler!r} is not on PATH)"


def _cuda_missing(mode: str, torch, cpp_extension) -> Optional[str]:
    if torch.version.cuda is None:
        return f"PyTorch {torch.__version__} is not a CUDA build"
    home = cpp_extension.CUDA_HOME
    if home is None or not os.path.exists(os.path.join(home, "bin", "nvcc")):
        return "nvcc not found (set CUDA_HOME)"
    if not os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
        return f"CUDA_HOME={home} has no include/cuda_runtime.h (nvcc a wrapper script? set CUDA_HOME to the toolkit)"
    if mode == "auto" and not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return "no GPU visible and TORCH_CUDA_ARCH_LIST unset (OPENTAD_EXT=all builds them anyway)"
    return None


def _warn_each(extensions, exc: Exception) -> None:
    for ext in extensions:
        warn(f"op {ext.name.rsplit('._', 1)[-1]!r} was not built ({type(exc).__name__}: {exc}); it falls back")


def _make_build_ext(base):
    """``base`` (torch's BuildExtension) that turns every build failure into a warning."""

    class NativeOpsBuildExt(base):
        def build_extension(self, ext) -> None:
            start = time.time()
            try:
                super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001 - any failure leaves the fallback in place
                _warn_each([ext], exc)
            else:
                sys.stderr.write(f"[opentad native ops] built {ext.name} in {time.time() - start:.0f} s\n")

        def build_extensions(self) -> None:
            # Python's own CFLAGS carry -g, which doubles compile time and size here
            for attr in ("compiler_so", "compiler_cxx", "linker_so"):
                command = getattr(self.compiler, attr, None)
                if isinstance(command, list):
                    setattr(self.compiler, attr, [arg for arg in command if arg != "-g"])
            try:
                super().build_extensions()
            except Exception as exc:  # noqa: BLE001 - e.g. an nvcc / CUDA version mismatch
                cuda = [e for e in self.extensions if any(s.endswith(".cu") for s in e.sources)]
                _warn_each(cuda or self.extensions, exc)
                self.extensions = [e for e in self.extensions if e not in cuda] if cuda else []
                try:
                    super().build_extensions()
                except Exception as again:  # noqa: BLE001 - never fail the install
                    _warn_each(self.extensions, again)

    return NativeOpsBuildExt


def native_extensions(root: str) -> Tuple[List, Dict]:
    """``(ext_modules, cmdclass)`` for ``setup()``; empty when nothing is to be built.

    Args:
        root: the repository root (holds ``csrc/`` and ``opentad/ops/specs.py``).
    """
    mode = build_mode()
    if mode == "none":
        return [], {}
    specs = runpy.run_path(os.path.join(root, "opentad", "ops", "specs.py"))["OP_SPECS"]
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as exc:
        warn(
            f"no op is built: PyTorch is not importable while building ({exc}); "
            "install torch first and use `pip install --no-build-isolation -e .`"
        )
        return [], {}
    cxx_missing = _cxx_missing()
    cuda_missing = cxx_missing or _cuda_missing(mode, torch, cpp_extension)
    include = [os.path.join(root, "csrc")]
    extensions = []
    for spec in specs:
        reason = cxx_missing if spec.device == "cpu" else cuda_missing
        if reason:
            warn(f"op {spec.name!r} is not built: {reason}")
            continue
        sources = [os.path.relpath(os.path.join(root, s), os.getcwd()) for s in spec.sources]
        if spec.device == "cpu":
            extensions.append(
                cpp_extension.CppExtension(
                    spec.module, sources, include_dirs=include, extra_compile_args=list(CXX_FLAGS)
                )
            )
        else:
            nvcc = list(NVCC_FLAGS)
            if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
                nvcc += DEFAULT_CUDA_ARCH_FLAGS
            extensions.append(
                cpp_extension.CUDAExtension(
                    spec.module,
                    sources,
                    include_dirs=include,
                    extra_compile_args={"cxx": list(CXX_FLAGS), "nvcc": nvcc},
                )
            )
    if not extensions:
        return [], {}
    return extensions, {"build_ext": _make_build_ext(cpp_extension.BuildExtension)}
