"""Shared utilities: logging and config handling."""
from .logger import get_rank, get_world_size, setup_logger

__all__ = ["get_rank", "get_world_size", "setup_logger"]
