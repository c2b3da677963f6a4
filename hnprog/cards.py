"""Deprecated: moved to :mod:`hnprog.presets.cards` (this shim goes in the next release)."""

import warnings

from hnprog.presets.cards import (
    PAPER,
    SYNTHETIC_WARNING,
    card_run,
    make_model_card,
    render_card,
    write_card,
)

warnings.warn("hnprog.cards is deprecated; import from hnprog.presets.cards (or hnprog.presets).",
              DeprecationWarning, stacklevel=2)

__all__ = ["PAPER", "SYNTHETIC_WARNING", "card_run", "make_model_card", "render_card",
           "write_card"]
