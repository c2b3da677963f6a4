"""Model-zoo commands: ``hnprog presets list``, ``hnprog download``, ``hnprog upload`` and
``hnprog card``."""

from __future__ import annotations

import click

from hnprog.cli.common import echo_done
from hnprog.cli.options import LibraryDefault, endpoint_option, hub_options

__all__ = ["COMMANDS", "card", "download", "presets", "upload"]


@click.group()
def presets() -> None:
    """Registered pretrained presets (pinned Hub commits with sha256 checksums)."""


@presets.command("list")
def presets_list() -> None:
    """List the registered presets (name, description, where the weights live) and families.

    A family name such as unet3d_multitask_synthetic_petct stands for all its registered
    <family>_fold<k> presets; loading it averages the folds.

    \b
    Example:
      hnprog presets list
    """
    from hnprog.presets import list_families, list_presets

    registry = list_presets()
    if not registry:
        click.echo(
            "No presets are registered in this version of hnprog. Load a preset folder or an "
            "hf://org/repo[@revision] URI with hnprog.from_preset."
        )
        return
    families = list_families(registry)
    if families:
        click.echo("Families (a family name given to --model, hnprog download or "
                   "hnprog.from_preset\nloads all its folds and averages them):")
        for family, members in families.items():
            folds = ", ".join(m[len(family) + 1:] for m in members)
            click.echo(f"  {family}  ({folds})")
        click.echo("\nPresets:")
    for name, entry in sorted(registry.items()):
        click.echo(f"  {name}\n    {entry['description']}\n"
                   f"    {entry.get('uri') or entry.get('path')}")


@click.command("download")
@click.argument("name")
@hub_options()
@click.option("--offline", is_flag=True, help="Use the local cache only, never the network.")
def download(name: str, cache_dir: str | None, endpoint: str | None, offline: bool) -> None:
    """Download a preset into the Hugging Face cache and verify every file's sha256.

    NAME is a registered preset, a family (all its folds), hf://org/repo[@revision] or a local
    preset folder. Prints the verified folder(s); loading them later works offline.

    \b
    Example:
      hnprog download unet3d_multitask_synthetic_petct
    """
    from hnprog.presets import download_preset

    folders = download_preset(name, cache_dir=cache_dir, endpoint=endpoint,
                              local_files_only=offline)
    for folder in folders:
        echo_done(f"verified preset -> {folder}")


@click.command("upload")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("uri")
@click.option("--tag", default=None, help="Release tag to create on the new commit, e.g. v1.")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@endpoint_option()
def upload(folder: str, uri: str, tag: str | None, private: bool, endpoint: str | None) -> None:
    """Validate a preset FOLDER and upload it to the Hub repository URI (hf://org/repo).

    The checksums are verified first; the repository is created if needed and the new commit
    tagged with --tag. The token is the one huggingface_hub finds (HF_TOKEN or
    `hf auth login`). Prints the commit id to pin.

    \b
    Example:
      hnprog upload cv/multitask/fold-1/preset hf://my-lab/unet3d_multitask_petct_fold1 --tag v1
    """
    from hnprog.presets.hub import upload_preset

    commit = upload_preset(folder, uri, tag=tag, private=private, endpoint=endpoint)
    echo_done(f"uploaded {folder} -> commit {commit}; pin it as {uri}@{commit}")


@click.command("card")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--cards-dir", type=click.Path(file_okay=False),
    default=LibraryDefault("hnprog.presets.cards:card_run", "cards_dir"), show_default=True,
    help="Where copies of the cards go, as <preset name>.md.",
)
def card(run_dir: str, cards_dir: str) -> None:
    """Write the model card of every preset in RUN_DIR from the run's own metrics.

    RUN_DIR is a preset folder or a run folder with presets below it (one per fold). Each
    card is written as the preset's README.md (its checksum in hnprog.json is updated) and
    copied into --cards-dir.

    \b
    Example:
      hnprog card cv/multitask --cards-dir weights_cards
    """
    from hnprog.presets.cards import card_run

    written = card_run(run_dir, cards_dir=cards_dir)
    echo_done(f"{len(written)} card(s) written; copies in {cards_dir}")


COMMANDS = (presets, download, upload, card)
