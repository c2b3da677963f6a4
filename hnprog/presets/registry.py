"""The preset registry: the names that ``from_preset`` knows, each pinned to exact files.

The registry is ``hnprog/presets/registry.json``, a JSON object of preset name to entry:

| key | meaning |
| --- | --- |
| `description` | one sentence, shown by ``hnprog presets list`` |
| `uri` | ``hf://org/repo@<40-hex commit>``: a Hub repository pinned to one commit |
| `path` | or a folder shipped inside the installed package, relative to the ``hnprog`` package folder (``pretrained/<name>``) |
| `sha256` | file name to sha256 for ``hnprog.json`` and every other file of the preset |

A family is the set of registered ``<family>_fold<k>`` names; its name stands for all its folds
(:func:`family_members`, :func:`list_families`). The registry lists only weights that exist.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hnprog.errors import InputError
from hnprog.presets.format import METADATA_FILE, check_file_name, is_sha256
from hnprog.presets.hub import parse_hf_uri, validate_revision

__all__ = [
    "REGISTRY_PATH",
    "family_members",
    "list_families",
    "list_presets",
    "load_registry",
    "packaged_folder",
]

REGISTRY_PATH = Path(__file__).with_name("registry.json")
# registry ``path`` entries are relative to the hnprog package folder
PACKAGE_ROOT = Path(__file__).resolve().parents[1]

_FOLD_SUFFIX = re.compile(r"^(?P<family>.+)_fold(?P<fold>\d+)$")


def load_registry(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Read and check the preset registry.

    Each entry has a ``description``, a ``sha256`` map covering ``hnprog.json`` and every
    file, and either ``uri`` (``hf://org/repo@<40-hex commit>``) or ``path`` (a folder
    inside the installed package).

    Args:
        path: str or PathLike, optional. Defaults to :data:`REGISTRY_PATH`
            (``hnprog/presets/registry.json``).

    Returns:
        dict. Preset name to entry; empty when the file does not exist.

    Raises:
        InputError: if an entry is malformed, in particular a Hub entry not pinned to a
            full commit id, a pinned file name outside the preset folder, or a packaged
            path outside the package.
    """
    path = Path(path) if path is not None else REGISTRY_PATH
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise InputError(f"preset registry {path}: not valid JSON ({exc}).") from None
    if not isinstance(registry, dict):
        raise InputError(f"preset registry {path}: must be a JSON object of name to entry.")
    for name, entry in registry.items():
        where = f"preset registry {path}, entry {name!r}"
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), dict):
            raise InputError(f"{where}: needs a 'sha256' map of file name to checksum.")
        if METADATA_FILE not in entry["sha256"]:
            raise InputError(f"{where}: 'sha256' must pin {METADATA_FILE}.")
        for file_name, digest in entry["sha256"].items():
            check_file_name(file_name, where)
            if not is_sha256(digest):
                raise InputError(f"{where}: a sha256 is 64 lowercase hex digits. "
                                 f"Received: sha256[{file_name!r}]={digest!r}")
        if "uri" in entry:
            reference = parse_hf_uri(entry["uri"])
            if reference.revision is None:
                raise InputError(f"{where}: the uri must pin a commit: hf://org/repo@<commit>.")
            validate_revision(reference.revision, require_commit=True)
        elif "path" in entry:
            packaged_folder(entry["path"], where)
        else:
            raise InputError(f"{where}: needs 'uri' (hf://org/repo@<commit>) or 'path'.")
    return registry


def packaged_folder(relative: str, where: str) -> Path:
    """The folder of a preset shipped in the package, from a registry ``path``.

    Args:
        relative: str. The entry's ``path``, relative to the ``hnprog`` package folder.
        where: str. Named in the error message.

    Returns:
        pathlib.Path. The resolved folder.

    Raises:
        InputError: if the path leaves the package folder.
    """
    folder = (PACKAGE_ROOT / relative).resolve()
    if PACKAGE_ROOT not in folder.parents:
        raise InputError(f"{where}: 'path' must stay inside the hnprog package. "
                         f"Received: path={relative!r}")
    return folder


def list_presets() -> dict[str, dict[str, Any]]:
    """The registered presets: name to registry entry (description, source, checksums).

    Returns:
        dict. A copy of the registry; empty when no preset is registered.

    Example:
        >>> import hnprog
        >>> for name, entry in hnprog.list_presets().items():  # doctest: +SKIP
        ...     print(name, entry["description"])
    """
    return copy.deepcopy(load_registry())


def family_members(name: str, registry: Mapping[str, Any] | None = None) -> list[str]:
    """The registered ``<name>_fold<k>`` presets of a family, ordered by fold.

    Args:
        name: str. The family name, e.g. ``"unet3d_multitask_synthetic_petct"``.
        registry: mapping, optional. Defaults to the package registry.

    Returns:
        list of str. Empty when ``name`` is not a family.
    """
    registry = load_registry() if registry is None else registry
    members = []
    for candidate in registry:
        match = _FOLD_SUFFIX.match(candidate)
        if match and match.group("family") == name:
            members.append((int(match.group("fold")), candidate))
    return [candidate for _, candidate in sorted(members)]


def list_families(registry: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """The registered families: family name to its ``<family>_fold<k>`` members, by fold.

    A family name is accepted wherever a preset name is (:func:`hnprog.presets.from_preset`,
    :func:`hnprog.presets.download_preset`, ``hnprog predict --model``) and stands for all its
    folds.

    Args:
        registry: mapping, optional. Defaults to the package registry.

    Returns:
        dict. Sorted by family name; empty when no registered name ends in ``_fold<k>``. A
        family whose name is itself registered is left out: that name loads the one preset.

    Example:
        >>> import hnprog.presets
        >>> hnprog.presets.list_families()  # doctest: +SKIP
        {'unet3d_multitask_synthetic_petct': ['unet3d_multitask_synthetic_petct_fold1', ...]}
    """
    registry = load_registry() if registry is None else registry
    names = sorted({m.group("family") for m in map(_FOLD_SUFFIX.match, registry) if m}
                   - set(registry))  # a registered name wins over the family of that name
    return {name: family_members(name, registry) for name in names}
