"""The ``hnprog`` command-line tool: a thin click layer over the Python API.

Each command parses its options, calls the library and prints the result; library errors
(:class:`hnprog.errors.HnprogError`) become a one-line message with exit status 1 and
command-line mistakes one line with status 2 (a full traceback only with ``hnprog --debug``).
Heavy libraries (Keras, TensorFlow, PyRadiomics) are imported inside the commands, so
``hnprog --help`` and ``hnprog COMMAND --help`` answer at once.

The commands live in one module per family, each listing them in ``COMMANDS``:

- :mod:`hnprog.cli.data`: ``synth``, ``preprocess``
- :mod:`hnprog.cli.train`: ``train``, ``cv``, ``finetune``
- :mod:`hnprog.cli.zoo`: ``presets list``, ``download``, ``upload``, ``card``
- :mod:`hnprog.cli.export`: ``export`` (OpenVINO and ONNX runtimes)
- :mod:`hnprog.cli.predict`: ``predict``, ``demo``, ``info``
- :mod:`hnprog.cli.radiomics`: ``radiomics extract``, ``radiomics cv``
- :mod:`hnprog.cli.convert`: ``convert`` (DICOM to NIfTI)
- :mod:`hnprog.cli.evaluate`: ``evaluate``, ``clinical cv``

Shared options are defined once in :mod:`hnprog.cli.options`; the quiet Keras start and the
final 'done' line in :mod:`hnprog.cli.common`. This module only builds the ``main`` group and
adds the commands to it, so no command module imports it (no import cycle).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, NoReturn

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) is noise on a command line;
# set before any command module can import TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import click  # noqa: E402

from hnprog import __version__  # noqa: E402
from hnprog.cli import data, export, predict, radiomics, train, zoo  # noqa: E402
from hnprog.cli import evaluate  # noqa: E402
from hnprog.cli.common import quiet_keras_start  # noqa: E402
from hnprog.errors import HnprogError  # noqa: E402

__all__ = ["CONTEXT_SETTINGS", "main", "quiet_keras_start"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """A click group that prints errors as one line unless ``--debug`` is given.

    Library errors exit with status 1; command-line mistakes (a missing path, a malformed
    option) with click's status 2, naming the command whose ``--help`` to read.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HnprogError as exc:
            root = ctx.find_root()
            if root.params.get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except click.UsageError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            _exit_on_usage_error(exc, ctx.command_path)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        # Mistakes in the options of `hnprog` itself are found here, before invoke().
        debug = "--debug" in args  # before parsing, which consumes the list
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if debug:
                raise
            _exit_on_usage_error(exc, info_name or "hnprog")


def _exit_on_usage_error(exc: click.UsageError, command_path: str) -> NoReturn:
    """Print a command-line mistake as one ``Error:`` line naming the --help to read; exit 2."""
    command = exc.ctx.command_path if exc.ctx is not None else command_path
    click.echo(f"Error: {exc.format_message()} (see '{command} --help')", err=True)
    sys.exit(exc.exit_code)


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
      hnprog predict --ct CT --pet PET -m MODEL -o out/
                                  risk and tumour contour of one patient (or of a cohort
                                  folder); MODEL from `hnprog presets list` or your own run
      hnprog COMMAND --help       each command's options, with an example
    """
    show_deprecations()


def show_deprecations() -> None:
    """Print hnprog's own warnings as one line each, without Python's file and source line:
    DeprecationWarnings (which Python hides outside ``__main__``) as ``Warning:``, so that a
    user of an old run folder or option learns what to use, and the notes of a run (a
    UserWarning or RuntimeWarning such as "--overwrite kept 2 files ...") as ``Note:``.
    Installed once per process; other libraries' warnings are shown as before."""
    previous = warnings.showwarning
    if getattr(previous, "_hnprog", False):
        return
    warnings.filterwarnings("default", category=DeprecationWarning, module=r"hnprog(\.|$)")
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        ours = os.path.abspath(str(filename)).startswith(package + os.sep)
        if ours and issubclass(category, DeprecationWarning):
            click.echo(f"Warning: {message}", err=True)
        elif ours and issubclass(category, (UserWarning, RuntimeWarning)):
            click.echo(f"Note: {message}", err=True)
        else:
            previous(message, category, filename, lineno, file, line)

    show._hnprog = True  # type: ignore[attr-defined]
    warnings.showwarning = show


for _family in (data, train, zoo, export, predict, radiomics, evaluate):
    for _command in _family.COMMANDS:
        main.add_command(_command)
from hnprog.cli import convert as _convert  # noqa: E402 - DICOM to NIfTI
main.add_command(_convert.convert_command)


def __getattr__(name: str) -> Any:
    if name == "patient_id_from_ct":  # deprecated alias for one release: the library owns ids
        warnings.warn(
            "hnprog.cli.patient_id_from_ct is deprecated; use "
            "hnprog.data.cohort.patient_id_from_path",
            DeprecationWarning,
            stacklevel=2,
        )
        from hnprog.data.cohort import patient_id_from_path

        return patient_id_from_path
    raise AttributeError(f"module 'hnprog.cli' has no attribute {name!r}")
