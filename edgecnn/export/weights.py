"""Moved to ``edgecnn.weights``, below train/ and export/ (both read weights through it); kept so that
existing imports go on working."""

from edgecnn.weights import WeightsError, WeightsFile, head_keys, load_into, read_weights  # noqa: F401
