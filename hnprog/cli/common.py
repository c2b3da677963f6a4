"""What every command module shares besides options: the quiet Keras start and the 'done' line.

The command modules import this module and :mod:`hnprog.cli.options`, never the package
``hnprog.cli`` itself, so the CLI package has no import cycle: ``hnprog.cli`` imports the
command modules, which import only these two and the library.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

__all__ = ["echo_done", "needs_keras", "quiet_keras_start"]


def quiet_keras_start() -> None:
    """Import Keras and start its backend with TensorFlow's C++ start-up logs hidden.

    TensorFlow writes CUDA-probing and oneDNN notes to file descriptor 2 before any logging
    setting applies; on a command line they bury the one line that matters. ``--debug`` (or
    ``HNPROG_VERBOSE_BACKEND=1``) keeps them.
    """
    ctx = click.get_current_context(silent=True)
    debug = bool(ctx and ctx.find_root().params.get("debug"))
    if debug or os.environ.get("HNPROG_VERBOSE_BACKEND") or "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras

            keras.ops.convert_to_numpy(keras.ops.zeros((1,)))  # initialise the devices now
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def needs_keras(func: Callable) -> Callable:
    """Decorate a command that builds or runs models: start Keras quietly first."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        quiet_keras_start()
        return func(*args, **kwargs)

    return wrapper


def echo_done(message: str) -> None:
    """Print a command's final 'where everything is' line, in green on a terminal."""
    click.secho(message, fg="green", err=False)
