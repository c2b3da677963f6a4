"""Deprecated: moved to :mod:`hnprog.presets.hub` (this shim goes in the next release)."""

import warnings

from hnprog.presets.format import METADATA_FILE
from hnprog.presets.hub import *  # noqa: F403 (the moved module's public names)
from hnprog.presets.hub import HF_SCHEME
from hnprog.presets.hub import __all__ as _moved

warnings.warn("hnprog.hub is deprecated; import from hnprog.presets.hub (or hnprog.presets).",
              DeprecationWarning, stacklevel=2)

__all__ = [*_moved, "HF_SCHEME", "METADATA_FILE"]
