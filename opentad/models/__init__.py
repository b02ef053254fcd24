"""Models: detectors and their parts, each registered in :mod:`opentad.registry`."""
