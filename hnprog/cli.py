"""The ``hnprog`` command-line tool: a thin click layer over the Python API.

Each command parses its options, calls one library function and turns
:class:`hnprog.errors.HnprogError` into a one-line message with a non-zero exit code (a full
traceback only with ``hnprog --debug``). Heavy libraries (Keras, TensorFlow, PyRadiomics) are
imported inside the commands, so ``hnprog --help`` answers at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from hnprog import __version__
from hnprog.errors import HnprogError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """A click group that prints library errors as one line unless ``--debug`` is given."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HnprogError as exc:
            root = ctx.find_root()
            if root.params.get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="hnprog")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Prognosis of head-and-neck cancer from FDG-PET/CT.

    Multi-task deep segmentation and radiomics (Andrearczyk et al., MICCAI 2021): predict a
    risk score and a tumour contour from a PET/CT pair, fine-tune and cross-validate on your
    own cohort, and compare against a handcrafted radiomics baseline.

    \b
    Start here:
      hnprog demo                 whole method on a synthetic cohort, in minutes on a CPU
      hnprog synth data/ -n 20    write a synthetic HECKTOR-layout cohort
      hnprog COMMAND --help       each command's options, with an example
    """


def option_group(*decorators: Callable) -> Callable:
    """Bundle click options so that commands sharing them declare them once."""

    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def echo_done(message: str) -> None:
    """Print a final 'where everything is' line in a consistent style."""
    click.secho(message, fg="green", err=False)


# == data commands (synth, preprocess) ==

# == radiomics commands ==

# == training commands (train, cv, finetune) ==

# == model-zoo commands (presets, download, upload, card) ==

# == prediction commands (predict, demo, info) ==


if __name__ == "__main__":  # pragma: no cover
    main()
