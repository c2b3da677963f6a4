"""Model cards for presets, generated from ``hnprog.json`` and nothing else.

A card is the preset's ``README.md``: a YAML header written by huggingface_hub's
``ModelCardData`` (licence, tags, and a ``model-index`` with the C-index and Dice of the run)
followed by a Markdown body (intended use, training data, preprocessing, outputs, training
recipe, metrics, checksums, how to load). Every number in it comes from the preset's own
``hnprog.json``, which :func:`hnprog.presets.save_to_preset` fills from the training run, so
no number is typed by hand. Weights trained on synthetic data carry a warning at the top of
the card and a ``synthetic-data`` tag.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hnprog.errors import InputError
from hnprog.io import atomic_write
from hnprog.presets.format import CARD_FILE, METADATA_FILE, verify_preset, write_metadata

__all__ = ["card_run", "make_model_card", "render_card", "write_card"]

PAPER = (
    "Andrearczyk V., Fontaine P., Oreiller V., Castelli J., Jreige M., Prior J. O., "
    "Depeursinge A. Multi-task Deep Segmentation and Radiomics for Automatic Prognosis in Head "
    "and Neck Cancer. PRIME workshop, MICCAI 2021."
)
# metric key in hnprog.json -> (model-index metric type, display name, task type, task name)
_MODEL_INDEX_METRICS = {
    "c_index": ("c-index", "C-index (Harrell)", "survival-analysis", "Survival prediction"),
    "dice": ("dice", "Dice (GTVt)", "image-segmentation", "GTVt segmentation"),
}
SYNTHETIC_WARNING = (
    "> **Synthetic-data weights.** Trained on hnprog's synthetic PET/CT cohort to try the "
    "tool. They have never seen a patient and must never be used for patients."
)


def _eval_results(metadata: Mapping[str, Any]) -> list[Any]:
    from huggingface_hub import EvalResult

    dataset = metadata.get("dataset", {})
    dataset_name = str(dataset.get("name", "unknown"))
    dataset_id = str(dataset.get("id") or dataset_name.lower().replace(" ", "-"))
    results = []
    for split, values in metadata.get("metrics", {}).items():
        for key, value in values.items():
            if key not in _MODEL_INDEX_METRICS:
                continue
            metric_type, metric_name, task_type, task_name = _MODEL_INDEX_METRICS[key]
            results.append(EvalResult(
                task_type=task_type, task_name=task_name, dataset_type=dataset_id,
                dataset_name=dataset_name, dataset_split=split, metric_type=metric_type,
                metric_name=metric_name, metric_value=round(float(value), 4),
            ))
    return results


def make_model_card(metadata: Mapping[str, Any]) -> Any:
    """Build a huggingface_hub ``ModelCard`` from a preset description.

    Args:
        metadata: dict. The preset's ``hnprog.json`` (as written by ``save_to_preset``).

    Returns:
        huggingface_hub.ModelCard. Its ``data`` holds the licence, tags and a model-index with
        one result per split and metric (``c_index`` and ``dice``) found in
        ``metadata["metrics"]``.
    """
    from huggingface_hub import ModelCard, ModelCardData

    dataset = metadata.get("dataset", {})
    tags = ["hnprog", "keras", "medical-imaging", "pet-ct", "head-and-neck-cancer",
            "survival-analysis", "image-segmentation"]
    if dataset.get("synthetic"):
        tags.append("synthetic-data")
    eval_results = _eval_results(metadata)
    data = ModelCardData(
        license=metadata.get("license"),
        library_name="keras",
        tags=tags,
        model_name=metadata.get("name"),
        eval_results=eval_results or None,
    )
    content = f"---\n{data.to_yaml()}\n---\n\n{_body(metadata)}"
    return ModelCard(content)


def render_card(metadata: Mapping[str, Any]) -> str:
    """The card of a preset as Markdown text with its YAML header (see :func:`make_model_card`).

    Args:
        metadata: dict. The preset's ``hnprog.json``.

    Returns:
        str. The ``README.md`` content.
    """
    return str(make_model_card(metadata))


def _body(metadata: Mapping[str, Any]) -> str:
    dataset = metadata.get("dataset", {})
    name = metadata.get("name", "preset")
    lines = [f"# {name}", ""]
    if dataset.get("synthetic"):
        lines += [SYNTHETIC_WARNING, ""]
    lines += [str(metadata.get("description", "")), "",
              "## Intended use", "", str(metadata.get("intended_use", "")), "",
              f"Licence of the weights: `{metadata.get('license')}`.", ""]
    lines += ["## Model", "", "| | |", "| --- | --- |",
              f"| task | {metadata.get('task')} |"]
    fold, n_folds = metadata.get("fold"), metadata.get("n_folds")
    if fold is not None:  # hnprog.json counts from 0, preset names (..._fold1) from 1
        of = f" of {n_folds}" if n_folds is not None else ""
        lines.append(f"| fold | {int(fold) + 1}{of} (`\"fold\": {fold}` in hnprog.json, "
                     "counted from 0) |")
    elif n_folds is not None:
        lines.append(f"| n folds | {n_folds} |")
    if metadata.get("split_seed") is not None:
        lines.append(f"| split seed | {metadata['split_seed']} |")
    model_input = metadata.get("input", {})
    lines.append(f"| input `{model_input.get('name', 'image')}` | shape "
                 f"{_shape(['batch', *model_input.get('shape', [])])}, channels "
                 f"{', '.join(model_input.get('channels', []))} |")
    for output, spec in metadata.get("outputs", {}).items():
        endpoint = f" Endpoint: {spec['endpoint']}." if "endpoint" in spec else ""
        lines.append(f"| output `{output}` | shape {_shape(spec.get('shape', []))}: "
                     f"{spec.get('meaning', '')}{endpoint} |")
    lines += _survival_rows(metadata)
    lines += ["", "## Training data", ""]
    lines += [f"- {key.replace('_', ' ')}: {value}" for key, value in dataset.items()]
    lines += ["", "## Preprocessing the weights expect", "", "```json",
              json.dumps(metadata.get("preprocessing", {}), indent=2), "```", ""]
    training = metadata.get("training") or {}
    if training:
        lines += ["## Training recipe", "", "```json", json.dumps(training, indent=2), "```", ""]
    lines += ["## Results of the run", ""]
    metrics = metadata.get("metrics") or {}
    if metrics:
        names = sorted({key for values in metrics.values() for key in values})
        lines += ["| split | " + " | ".join(names) + " |",
                  "| --- |" + " --- |" * len(names)]
        for split, values in metrics.items():
            cells = [f"{values[k]:.4f}" if k in values else "" for k in names]
            lines.append(f"| {split} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Computed by the training run on its own data split; C-index is Harrell's "
                     "(higher risk = earlier event), Dice is per patient then averaged.")
    else:
        lines.append("The run recorded no metrics.")
    versions = metadata.get("versions", {})
    lines += ["", "## Use", "", "```python", "import hnprog", "",
              f'preset = hnprog.from_preset("<hf://org/repo@commit or folder>")',
              "# x: (N, D, H, W, 2) float32, channels [CT, PET], preprocessed as above",
              "out = preset.predict(x)",
              "```", "",
              "## Files", "", "| file | sha256 |", "| --- | --- |"]
    lines += [f"| `{f}` | `{d}` |" for f, d in metadata.get("files", {}).items()
              if f != "README.md"]
    lines += ["", f"Written by hnprog {versions.get('hnprog')} with Keras {versions.get('keras')} "
              f"({versions.get('backend')} backend) on {metadata.get('created')}.", "",
              "## Citation", "", PAPER, ""]
    return "\n".join(lines)


def _shape(shape: list[Any]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def write_card(
    preset_dir: str | os.PathLike, *, cards_dir: str | os.PathLike | None = None
) -> Path:
    """Regenerate a preset's ``README.md`` from its ``hnprog.json`` and update the checksums.

    Args:
        preset_dir: str or PathLike. The preset folder.
        cards_dir: str or PathLike, optional. Also write a copy as
            ``<cards_dir>/<preset name>.md`` (the repository keeps its shipped cards in
            ``weights_cards/``). Defaults to None.

    Returns:
        pathlib.Path. The preset's ``README.md``.

    Raises:
        InputError: if the folder is not a valid preset (checksums are verified first).
    """
    preset_dir = Path(preset_dir)
    metadata = verify_preset(preset_dir)
    # The card lists the other files' checksums, which do not depend on the card itself.
    text = render_card(metadata)
    with atomic_write(preset_dir / CARD_FILE, encoding="utf-8") as f:
        f.write(text)
    write_metadata(preset_dir, metadata)
    if cards_dir is not None:
        with atomic_write(Path(cards_dir) / f"{metadata.get('name', preset_dir.name)}.md",
                          encoding="utf-8") as f:
            f.write(text)
    return preset_dir / CARD_FILE


def card_run(
    run_dir: str | os.PathLike, *, cards_dir: str | os.PathLike | None = "weights_cards"
) -> list[Path]:
    """Write the cards of every preset in a training run's folder.

    Args:
        run_dir: str or PathLike. A preset folder, or a run folder with presets below it
            (for example one per fold).
        cards_dir: str or PathLike, optional. Where copies of the cards go. Defaults to
            ``"weights_cards"``; None writes the cards into the presets only.

    Returns:
        list of pathlib.Path. The cards written into the presets, sorted by folder.

    Raises:
        InputError: if ``run_dir`` holds no preset, or a preset's checksums do not match.
    """
    run_dir = Path(run_dir)
    if (run_dir / METADATA_FILE).is_file():
        presets = [run_dir]
    else:
        presets = sorted(p.parent for p in run_dir.rglob(METADATA_FILE))
    if not presets:
        raise InputError(
            f"{run_dir}: no preset found ({METADATA_FILE} in the folder or below it). Save the "
            "run's models with hnprog.save_to_preset first."
        )
    return [write_card(p, cards_dir=cards_dir) for p in presets]


def _survival_rows(metadata: Mapping[str, Any]) -> list[str]:
    """The card's rows on survival probabilities and the covariates the model needs."""
    risk = (metadata.get("outputs") or {}).get("risk")
    if risk is None:
        return []
    clinical = risk.get("clinical") or {}
    covariates = clinical.get("covariates") or []
    if covariates:
        rows = [f"| covariates needed | the image risk needs none (CT and PET only); the deep + "
                f"clinical risk (`hnprog predict --clinical FILE`, column `risk_clinical`) needs "
                f"{', '.join(covariates)} (a missing value takes the median of the "
                f"{clinical.get('n_patients')} training patients) |"]
    else:
        rows = ["| covariates needed | none: the risk uses the CT and PET only |"]
    baseline = risk.get("baseline")
    if baseline:
        rows.append(
            f"| survival probabilities | Breslow baseline cumulative hazard of "
            f"{baseline.get('n_patients')} training patients ({baseline.get('n_events')} "
            f"events), known up to {baseline.get('max_time_days', 0):g} days: `hnprog predict` "
            "writes survival_<days>d |")
    else:
        rows.append("| survival probabilities | none (no baseline recorded): risk only |")
    return rows
