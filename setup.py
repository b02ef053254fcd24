"""Install opentad. Native ops (csrc/) are optional: see docs/install.md.

``OPENTAD_EXT=auto|all|none`` chooses which native ops are compiled (default
``auto``); an op that fails to build only prints a warning, since every op has
a pure-PyTorch fallback. The logic lives in opentad/ops/_build.py.
"""
import os
import runpy

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def read_requirements(path):
    with open(path, encoding="utf8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


ext_modules, cmdclass = runpy.run_path(os.path.join(ROOT, "opentad", "ops", "_build.py"))["native_extensions"](ROOT)

setup(
    name="opentad",
    version="0.1.0",
    description="Temporal action detection toolbox with QLoRA fine-tuning for AdaTAD",
    packages=find_packages(include=["opentad", "opentad.*"]),
    python_requires=">=3.9",
    install_requires=read_requirements("requirements.txt"),
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
