"""opentad: temporal action detection with QLoRA fine-tuning for AdaTAD."""
__version__ = "0.1.0"
