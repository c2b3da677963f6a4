"""The preset format and the presets package: files stay inside the folder, each file is hashed
once per load, the package's modules import downwards only, and the old module paths warn."""

from __future__ import annotations

import ast
import importlib
import json
import os
import sys
from pathlib import Path

import pytest

import hnprog
from hnprog.errors import InputError
from hnprog.presets import (
    FoldEnsemble,
    Predictor,
    download_preset,
    from_preset,
    load_registry,
    loading,
    verify_preset,
)
from hnprog.presets import format as preset_format
from hnprog.presets import registry as preset_registry
from hnprog.testing.presets import make_tiny_preset, tiny_images, tiny_model

PACKAGE = Path(hnprog.__file__).parent
SHIPPED = "unet3d_multitask_synthetic_petct_fold1"


def _list_file(folder: Path, name: str, digest: str) -> None:
    """Make hnprog.json list ``name`` with ``digest``, as a hostile preset would."""
    metadata = json.loads((folder / "hnprog.json").read_text())
    metadata["files"][name] = digest
    (folder / "hnprog.json").write_text(json.dumps(metadata))


# -- nothing outside the preset folder ------------------------------------------------------


@pytest.mark.parametrize("name", ["../outside.txt", "sub/../../outside.txt", "/etc/hostname",
                                  "..\\outside.txt", ""])
def test_a_listed_file_outside_the_folder_is_refused_before_it_is_read(tmp_path, name):
    folder = make_tiny_preset(tmp_path / "p")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    _list_file(folder, name, preset_format.sha256_file(outside))
    with pytest.raises(InputError, match="outside the preset folder"):
        verify_preset(folder)
    with pytest.raises(InputError, match="outside the preset folder"):
        from_preset(folder)


def test_a_symlink_that_leaves_the_folder_is_refused(tmp_path):
    folder = make_tiny_preset(tmp_path / "p")
    weights = folder / "model.weights.h5"
    moved = tmp_path / "elsewhere.h5"
    weights.rename(moved)
    os.symlink(moved, weights)  # same bytes, so the sha256 matches
    with pytest.raises(InputError, match=r"model\.weights\.h5 resolves to .*outside the preset"):
        from_preset(folder)


def test_a_symlink_inside_the_folder_is_followed(tmp_path):
    folder = make_tiny_preset(tmp_path / "p")
    (folder / "store").mkdir()
    (folder / "model.weights.h5").rename(folder / "store" / "w.h5")
    os.symlink(Path("store") / "w.h5", folder / "model.weights.h5")
    assert from_preset(folder).predict(tiny_images(1))["risk"].shape == (1, 1)


def test_a_registry_entry_pinning_a_file_outside_the_folder_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"bad": {"description": "x", "path": "pretrained/x", "sha256": {
        "hnprog.json": "0" * 64, "../../escape": "0" * 64}}}))
    monkeypatch.setattr(preset_registry, "REGISTRY_PATH", path)
    with pytest.raises(InputError, match="outside the preset folder"):
        load_registry()


# -- each file hashed once per load ---------------------------------------------------------


@pytest.fixture
def file_reads(monkeypatch):
    """Counts, per file of the shipped preset, the hashes of the file and reads of its bytes."""
    counts: dict[str, int] = {}
    sha256_file, read_bytes = preset_format.sha256_file, Path.read_bytes
    folder = (PACKAGE / load_registry()[SHIPPED]["path"]).resolve()

    def count(path):
        path = Path(path).resolve()
        if path.parent == folder:
            counts[path.name] = counts.get(path.name, 0) + 1

    def counting_sha256(path):
        count(path)
        return sha256_file(path)

    def counting_read_bytes(self):
        count(self)
        return read_bytes(self)

    monkeypatch.setattr(preset_format, "sha256_file", counting_sha256)
    monkeypatch.setattr(Path, "read_bytes", counting_read_bytes)
    return counts


def test_a_registered_preset_reads_each_file_once(file_reads):
    registered = set(load_registry()[SHIPPED]["sha256"])
    assert registered == {"hnprog.json", "config.json", "model.weights.h5", "README.md"}
    download_preset(SHIPPED)
    assert file_reads == dict.fromkeys(registered, 1)
    file_reads.clear()
    preset = from_preset(SHIPPED)  # the shipped preset, against its pinned checksums
    assert file_reads == dict.fromkeys(registered, 1)
    assert preset.metadata["name"] == SHIPPED


def test_registry_and_metadata_checksums_are_both_checked(tmp_path):
    folder = make_tiny_preset(tmp_path / "p")
    good = verify_preset(folder)["files"]["config.json"]
    assert verify_preset(folder, expected_sha256={"config.json": good})
    with pytest.raises(InputError, match="the preset registry records f{64}"):
        verify_preset(folder, expected_sha256={"config.json": "f" * 64})
    with pytest.raises(InputError,
                       match=r"mismatch for hnprog\.json: the preset registry records 0{64}"):
        verify_preset(folder, expected_sha256={"hnprog.json": "0" * 64})
    with pytest.raises(InputError, match=r"extra\.bin is missing \(listed in the preset"):
        verify_preset(folder, expected_sha256={"extra.bin": "0" * 64})


# -- the package's structure ----------------------------------------------------------------

# module -> the presets modules it may import (the package's own layers, bottom first)
ALLOWED = {
    "format": set(),
    "preset": set(),
    "ensemble": {"preset"},
    "hub": {"format"},
    "registry": {"format", "hub"},
    "cards": {"format"},
    "save": {"format", "preset", "cards"},
    "loading": {"format", "preset", "ensemble", "hub", "registry", "exported"},
    "exported": {"format", "preset"},
    "export": {"format", "preset", "exported", "loading"},
    "tta": set(),
}
# hnprog's layers above presets (docs/architecture.md): nothing in presets imports them
ABOVE = ("hnprog.radiomics", "hnprog.training", "hnprog.predict", "hnprog.demo", "hnprog.cli",
         "hnprog.testing")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_presets_modules_import_only_downwards():
    found = {p.stem for p in (PACKAGE / "presets").glob("*.py")} - {"__init__"}
    assert found == set(ALLOWED)
    for module, allowed in ALLOWED.items():
        imports = _imports(PACKAGE / "presets" / f"{module}.py")
        inside = {name.split(".")[2] for name in imports if name.startswith("hnprog.presets.")}
        assert inside <= allowed, f"presets/{module}.py imports {sorted(inside - allowed)}"
        assert "hnprog.presets" not in imports, f"presets/{module}.py imports the package"
        upward = sorted(n for n in imports if n.startswith(ABOVE))
        assert not upward, f"presets/{module}.py imports {upward} from a layer above"


def test_every_module_that_registers_keras_objects_is_imported_before_a_build():
    registering = set()
    for path in PACKAGE.rglob("*.py"):
        if "register_keras_serializable" in path.read_text():
            relative = path.relative_to(PACKAGE.parent).with_suffix("")
            registering.add(".".join(relative.parts))
    assert registering == set(loading.KERAS_OBJECT_MODULES)


def test_importing_presets_does_not_start_keras():
    code = ("import sys, hnprog.presets; hnprog.presets.list_presets(); "
            "print('keras' in sys.modules)")
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert result.stdout.strip() == "False"


def test_preset_and_ensemble_are_predictors(tmp_path):
    preset = from_preset(make_tiny_preset(tmp_path / "p"))
    assert isinstance(preset, Predictor)
    assert isinstance(FoldEnsemble([preset, tiny_model(1)]), Predictor)
    from hnprog.presets.tta import MirrorTTA

    assert isinstance(MirrorTTA(preset), Predictor)


# -- old paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, name", [
    ("hnprog.hub", "hnprog.presets.hub", "upload_preset"),
    ("hnprog.cards", "hnprog.presets.cards", "write_card"),
])
def test_old_module_paths_warn_and_re_export(monkeypatch, old, new, name):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_top_level_names_come_from_the_presets_package():
    for name in ("from_preset", "save_to_preset", "list_presets", "download_preset", "Preset",
                 "upload_preset", "FoldEnsemble"):
        assert getattr(hnprog, name).__module__.startswith("hnprog.presets."), name
    with pytest.warns(DeprecationWarning, match="hnprog.models.task.Task"):
        assert hnprog.presets.TASKS == ("multitask", "radiomics", "segmentation")
