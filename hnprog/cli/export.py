"""Runtime export: ``hnprog export``."""

from __future__ import annotations

import click

from hnprog.cli.common import echo_done, needs_keras
from hnprog.cli.options import export_formats_option, hub_options, out_option

__all__ = ["COMMANDS", "export_command"]


@click.command("export")
@click.argument("model")
@export_formats_option()
@out_option("The exported preset folder; for several folds, one sub-folder per fold.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing folder.")
@hub_options()
@needs_keras
def export_command(model: str, formats: tuple[str, ...], out_dir: str, overwrite: bool,
                   cache_dir: str | None, endpoint: str | None) -> None:
    """Export a preset (or every fold of an ensemble) to OpenVINO and/or ONNX for fast CPU
    inference.

    MODEL is a preset name, a family (all its folds), hf://org/repo[@revision], a preset
    folder or a folder of fold presets. The exported folder keeps the preset's files and its
    hnprog.json (preprocessing, outputs, threshold, synthetic-data label) with the sha256 of
    every file, the exported ones included, the largest difference to Keras' outputs on one
    random input, and the seconds of one forward pass on each runtime, measured on this
    machine. Load it with hnprog predict -m OUT --runtime openvino, or --runtime auto: the
    fastest runtime measured here, on machines like this one (same CPU, cores and oneDNN
    setting), and Keras elsewhere; export on the machine that will predict. Python:
    hnprog.from_preset(OUT, runtime="openvino").

    \b
    Example:
      hnprog export unet3d_multitask_synthetic_petct --format openvino --format onnx \\
          --out exported/
    """
    import json

    from hnprog.presets.export import export_runtime
    from hnprog.presets.exported import auto_order, measured_seconds

    folders = export_runtime(model, out_dir, formats=formats, overwrite=overwrite,
                            cache_dir=cache_dir, endpoint=endpoint)
    records = [json.loads((folder / "hnprog.json").read_text()) for folder in folders]
    for folder, record in zip(folders, records):
        export = record["export"]
        worst = {fmt: max(values.values()) for fmt, values in
                 export["max_abs_difference"].items()}
        differences = ", ".join(f"{fmt} {value:.1e}" for fmt, value in worst.items())
        seconds = ", ".join(f"{runtime} {value:.2f} s"
                            for runtime, value in export["seconds_per_forward"].items())
        echo_done(f"exported {folder} (largest difference to Keras: {differences}; one forward "
                  f"pass here: {seconds})")
    chosen = auto_order(measured_seconds(records))[0]
    what = "these folds" if len(folders) > 1 else "it"
    click.echo(f"--runtime auto runs {what} on {chosen} on this machine (the fastest measured "
               f"here{', median over the folds' if len(folders) > 1 else ''}) and on keras on "
               "machines that differ (docs/scaling.md)")


COMMANDS = (export_command,)
