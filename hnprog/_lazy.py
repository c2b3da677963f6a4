"""Lazily imported public names of a package (PEP 562 ``__getattr__`` and ``__dir__``).

A package whose ``__init__`` imports Keras eagerly makes every sub-module import Keras too,
even a Keras-free one such as :mod:`hnprog.models.task` or :mod:`hnprog.training.config`.
:func:`lazy_attributes` lets the package name its public API without importing it:

>>> __getattr__, __dir__ = lazy_attributes(__name__, {"Task": "hnprog.models.task"})  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str,
    public: Mapping[str, str],
    *,
    hidden: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names load on first use.

    Args:
        package: str. The package's ``__name__``.
        public: mapping. Public name -> module that defines it; loaded names are cached in
            the package.
        hidden: mapping, optional. Names that still resolve but are not listed by ``dir``
            nor cached (deprecated aliases, whose defining module warns on every access).
            Defaults to None.

    Returns:
        tuple ``(__getattr__, __dir__)`` to assign at the package's top level.
    """
    hidden = dict(hidden or {})

    def __getattr__(name: str) -> Any:
        module_name = public.get(name) or hidden.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name), name)
        if name in public:
            setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__
