"""What setup.py builds for each OPENTAD_EXT, and that a failed build only warns."""
import runpy
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
BUILD = runpy.run_path(str(ROOT / "opentad" / "ops" / "_build.py"))  # as setup.py loads it


def names(extensions):
    return sorted(ext.name.rsplit("._", 1)[-1] for ext in extensions)


def test_none_builds_nothing(monkeypatch):
    monkeypatch.setenv("OPENTAD_EXT", "none")
    assert BUILD["native_extensions"](str(ROOT)) == ([], {})


def test_invalid_mode_is_rejected(monkeypatch):
    monkeypatch.setenv("OPENTAD_EXT", "some")
    with pytest.raises(SystemExit, match="auto"):
        BUILD["native_extensions"](str(ROOT))


def test_no_compiler_warns_per_op_and_builds_nothing(monkeypatch, capsys):
    monkeypatch.setenv("OPENTAD_EXT", "auto")
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert BUILD["native_extensions"](str(ROOT)) == ([], {})
    err = capsys.readouterr().err
    for op in ("nms_1d_cpu", "align1d_cpu", "boundary_pooling_cpu", "align1d_cuda"):
        assert f"op '{op}' is not built: no C++ compiler found" in err


def test_auto_without_gpu_builds_only_cpu_ops(monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    monkeypatch.setenv("OPENTAD_EXT", "auto")
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    extensions, cmdclass = BUILD["native_extensions"](str(ROOT))
    if not extensions:
        pytest.skip("no C++ compiler on this machine")
    assert names(extensions) == ["align1d_cpu", "boundary_pooling_cpu", "nms_1d_cpu"]
    assert "-ffp-contract=off" in extensions[0].extra_compile_args
    assert "build_ext" in cmdclass
    assert "align1d_cuda" in capsys.readouterr().err


def test_all_without_gpu_targets_default_architectures(monkeypatch):
    if torch.cuda.is_available() or torch.version.cuda is None:
        pytest.skip("needs a CUDA build of torch and no visible GPU")
    from torch.utils import cpp_extension

    toolkits = sorted(Path("/usr/local").glob("cuda*/include/cuda_runtime.h"))
    if toolkits:  # point at a real toolkit even when the nvcc on PATH is a wrapper
        monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(toolkits[-1].parents[1]))
    monkeypatch.setenv("OPENTAD_EXT", "all")
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    extensions, _ = BUILD["native_extensions"](str(ROOT))
    cuda = [e for e in extensions if e.name.endswith("_cuda")]
    if not cuda:
        pytest.skip("nvcc or a C++ compiler is missing")
    assert names(cuda) == ["align1d_cuda", "boundary_pooling_cuda"]
    assert "-gencode=arch=compute_90,code=sm_90" in cuda[0].extra_compile_args["nvcc"]


class _FakeExtension:
    def __init__(self, name, sources):
        self.name, self.sources = name, sources


class _FailingBase:
    """Stands in for torch's BuildExtension: fails on one extension, or before any build."""

    def __init__(self, extensions, fail_prepare=False):
        self.extensions, self.fail_prepare, self.built = extensions, fail_prepare, []
        self.compiler = type("Compiler", (), {"compiler_so": ["c++", "-g", "-O3"]})()

    def build_extension(self, ext):
        if ext.name.endswith("broken"):
            raise RuntimeError("error: expected ';'")
        self.built.append(ext.name)

    def build_extensions(self):
        if self.fail_prepare == "always":
            raise RuntimeError("compiler is broken")
        if self.fail_prepare and any(s.endswith(".cu") for e in self.extensions for s in e.sources):
            raise OSError("nvcc 12.1 does not match the CUDA 13.0 PyTorch was built with")
        for ext in self.extensions:
            self.build_extension(ext)


def test_a_failed_build_only_warns(capsys):
    cls = BUILD["_make_build_ext"](_FailingBase)
    builder = cls([_FakeExtension("opentad.ops._broken", ["a.cpp"]), _FakeExtension("opentad.ops._fine", ["b.cpp"])])
    builder.build_extensions()
    assert builder.built == ["opentad.ops._fine"]
    assert builder.compiler.compiler_so == ["c++", "-O3"]  # -g dropped
    assert "op 'broken' was not built (RuntimeError: error: expected ';')" in capsys.readouterr().err


def test_a_cuda_setup_failure_keeps_the_cpu_ops(capsys):
    cls = BUILD["_make_build_ext"](_FailingBase)
    exts = [_FakeExtension("opentad.ops._x_cpu", ["a.cpp"]), _FakeExtension("opentad.ops._x_cuda", ["k.cu", "b.cpp"])]
    builder = cls(exts, fail_prepare=True)
    builder.build_extensions()
    assert builder.built == ["opentad.ops._x_cpu"]
    assert "op 'x_cuda' was not built (OSError: nvcc 12.1" in capsys.readouterr().err


def test_a_setup_failure_without_cuda_ops_warns_and_returns(capsys):
    cls = BUILD["_make_build_ext"](_FailingBase)
    builder = cls([_FakeExtension("opentad.ops._x_cpu", ["a.cpp"])], fail_prepare="always")
    builder.build_extensions()  # does not raise
    assert builder.built == []
    assert "op 'x_cpu' was not built (RuntimeError: compiler is broken)" in capsys.readouterr().err
