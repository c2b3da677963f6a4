"""Deprecated: moved to :mod:`hnprog.presets.cards` (this shim goes in the next release)."""

import warnings

from hnprog.presets.cards import *  # noqa: F403 (the moved module's public names)
from hnprog.presets.cards import PAPER, SYNTHETIC_WARNING
from hnprog.presets.cards import __all__ as _moved

warnings.warn("hnprog.cards is deprecated; import from hnprog.presets.cards (or hnprog.presets).",
              DeprecationWarning, stacklevel=2)

__all__ = [*_moved, "PAPER", "SYNTHETIC_WARNING"]
