"""Install opentad. Native ops (csrc/) are optional: see docs/install.md."""
from setuptools import find_packages, setup


def read_requirements(path):
    with open(path, encoding="utf8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


setup(
    name="opentad",
    version="0.1.0",
    description="Temporal action detection toolbox with QLoRA fine-tuning for AdaTAD",
    packages=find_packages(include=["opentad", "opentad.*"]),
    python_requires=">=3.9",
    install_requires=read_requirements("requirements.txt"),
)
