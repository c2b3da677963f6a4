"""Hub access against a loopback Hub server: downloads, offline cache, tampering, truncation,
validation, uploads. No test here reaches the real Hugging Face Hub."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from hnprog import presets
from hnprog.cli import main
from hnprog.errors import InputError
from hnprog.presets import FoldEnsemble, Preset, from_preset, hub
from hnprog.presets import registry as preset_registry
from hnprog.presets.hub import HubReference, parse_hf_uri, upload_preset, validate_revision
from hnprog.testing.loopback_hub import LoopbackHub
from hnprog.testing.presets import make_tiny_preset as make_preset
from hnprog.testing.presets import tiny_images as images

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def server(monkeypatch):
    # conftest.py turns the Hub's offline mode on for every test; these talk to loopback.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with LoopbackHub() as loopback:
        yield loopback


@pytest.fixture
def preset_dir(tmp_path):
    return make_preset(tmp_path / "preset")


def _cache_files(cache):
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())


# -- URIs and validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("hf://org/repo", HubReference("org/repo", None)),
        ("hf://my-lab/unet3d_hecktor.v2@v1", HubReference("my-lab/unet3d_hecktor.v2", "v1")),
        (f"hf://org/repo@{COMMIT}", HubReference("org/repo", COMMIT)),
        ("hf://org/repo@refs/pr/3", HubReference("org/repo", "refs/pr/3")),
    ],
)
def test_parse_hf_uri(uri, expected):
    reference = parse_hf_uri(uri)
    assert reference == expected
    assert str(reference) == uri
    assert reference.is_pinned == (expected.revision == COMMIT)


@pytest.mark.parametrize(
    "uri, message",
    [
        ("org/repo", "must start with 'hf://'"),
        ("hf://repo", "org/repo"),
        ("hf://org/re po", "org/repo"),
        ("hf://org/../etc", "org/repo"),
        ("hf://org/a--b", "no '--'"),
        ("hf://-org/repo", "org/repo"),
        ("hf://org/" + "r" * 97, "org/repo"),
        ("hf://org/repo@", "revision"),
        ("hf://org/repo@../../x", "revision"),
        ("hf://org/repo@main;rm", "revision"),
        ("hf://org/repo@v1.lock", "revision"),
    ],
)
def test_parse_hf_uri_rejects(uri, message):
    with pytest.raises(InputError, match=message):
        parse_hf_uri(uri)


def test_validate_revision_require_commit():
    assert validate_revision(COMMIT, require_commit=True) == COMMIT
    with pytest.raises(InputError, match="40-character"):
        validate_revision("v1", require_commit=True)
    with pytest.raises(InputError, match="40-character"):
        validate_revision(COMMIT.upper(), require_commit=True)


# -- downloads ----------------------------------------------------------------------------------


def test_download_then_load_offline_from_cache(server, preset_dir, tmp_path):
    commit = server.add_folder("org/model", preset_dir, tags=("v1",))
    cache = tmp_path / "hf-cache"
    online = from_preset("hf://org/model@v1", endpoint=server.endpoint, cache_dir=cache)
    assert isinstance(online, Preset)
    assert online.path.name == commit  # the cache snapshot of the resolved commit
    assert ("HEAD", "/org/model/resolve/v1/hnprog.json") in server.requests
    assert any(path.endswith("/model.weights.h5") for method, path in server.requests
               if method == "GET")
    x = images(1)
    expected = online.predict(x)

    server.stop()
    offline = from_preset("hf://org/model@v1", endpoint=server.endpoint, cache_dir=cache)
    np.testing.assert_allclose(offline.predict(x)["risk"], expected["risk"], rtol=1e-6)
    pinned = presets.download_preset(f"hf://org/model@{commit}", endpoint=server.endpoint,
                                     cache_dir=cache)
    assert pinned == [online.path]


def test_hf_endpoint_variable_and_offline_mode(server, preset_dir, tmp_path, monkeypatch):
    commit = server.add_folder("org/model", preset_dir)
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="not in the local Hugging Face cache"):
        presets.download_preset(f"hf://org/model@{commit}", cache_dir=cache)
    assert server.requests == []  # offline mode sent nothing
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    [folder] = presets.download_preset(f"hf://org/model@{commit}", cache_dir=cache)
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "hnprog.json", "model.weights.h5"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert presets.download_preset(f"hf://org/model@{commit}", cache_dir=cache) == [folder]


def test_tampered_weights_on_the_hub_are_refused(server, preset_dir, tmp_path):
    weights = preset_dir / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    server.add_folder("org/model", preset_dir)
    with pytest.raises(InputError, match=r"sha256 mismatch for model\.weights\.h5"):
        from_preset("hf://org/model", endpoint=server.endpoint, cache_dir=tmp_path / "c")


def test_truncated_download_leaves_nothing_half_written(server, preset_dir, tmp_path,
                                                        monkeypatch):
    import huggingface_hub.file_download as file_download

    monkeypatch.setattr(file_download.time, "sleep", lambda seconds: None)  # skip retry waits
    server.add_folder("org/model", preset_dir)
    server.truncate = {"model.weights.h5"}
    cache = tmp_path / "hf-cache"
    with pytest.raises(InputError, match=r"downloading 'model\.weights\.h5' failed"):
        from_preset("hf://org/model", endpoint=server.endpoint, cache_dir=cache)
    weights_sha = json.loads((preset_dir / "hnprog.json").read_text())["files"][
        "model.weights.h5"]
    data_files = [f for f in _cache_files(cache) if not f.startswith(".locks/")]
    assert not [f for f in data_files if f.endswith(".incomplete") or weights_sha in f
                or f.endswith("model.weights.h5")], data_files
    assert [f for f in data_files if f.endswith("hnprog.json")]  # complete files are kept
    # the next attempt, with a good connection, completes and verifies
    server.truncate = set()
    preset = from_preset("hf://org/model", endpoint=server.endpoint, cache_dir=cache)
    assert preset.metadata["files"]["model.weights.h5"] == weights_sha


@pytest.mark.parametrize(
    "uri, message",
    [
        ("hf://org/missing", "repository not found"),
        ("hf://org/model@v9", "revision 'v9' not found"),
    ],
)
def test_missing_repo_or_revision(server, preset_dir, tmp_path, uri, message):
    server.add_folder("org/model", preset_dir)
    with pytest.raises(InputError, match=message):
        from_preset(uri, endpoint=server.endpoint, cache_dir=tmp_path / "c")


def test_repo_without_preset_file(server, tmp_path):
    server.add_commit("org/other", {"README.md": b"hello"})
    with pytest.raises(InputError, match=r"no file 'hnprog\.json'"):
        from_preset("hf://org/other", endpoint=server.endpoint, cache_dir=tmp_path / "c")


def test_metadata_listing_a_path_outside_the_repo_is_refused(server, tmp_path):
    metadata = {"format_version": 1, "files": {"../../escape": "0" * 64}}
    server.add_commit("org/evil", {"hnprog.json": json.dumps(metadata).encode()})
    with pytest.raises(InputError, match="outside the preset folder"):
        from_preset("hf://org/evil", endpoint=server.endpoint, cache_dir=tmp_path / "c")


# -- registered names and families ------------------------------------------------------------


def _register(tmp_path, monkeypatch, entries):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(entries))
    monkeypatch.setattr(preset_registry, "REGISTRY_PATH", path)


def _entry(folder, commit, repo):
    sha = json.loads((folder / "hnprog.json").read_text())["files"]
    sha["hnprog.json"] = presets.sha256_file(folder / "hnprog.json")
    return {"description": "test preset", "uri": f"hf://{repo}@{commit}", "sha256": sha}


def test_registered_name_is_pinned_and_checked(server, tmp_path, monkeypatch):
    folders = [make_preset(tmp_path / f"fold{k}", seed=k) for k in range(2)]
    entries = {}
    for k, folder in enumerate(folders):
        commit = server.add_folder(f"org/fam_fold{k}", folder)
        entries[f"fam_fold{k}"] = _entry(folder, commit, f"org/fam_fold{k}")
    _register(tmp_path, monkeypatch, entries)
    options = dict(endpoint=server.endpoint, cache_dir=tmp_path / "c")

    single = from_preset("fam_fold1", **options)
    assert isinstance(single, Preset) and single.metadata["fold"] == 1
    ensemble = from_preset("fam", **options)
    assert isinstance(ensemble, FoldEnsemble)
    assert [m.metadata["fold"] for m in ensemble] == [0, 1]
    assert len(presets.download_preset("fam", **options)) == 2

    # a registry checksum that differs from the downloaded file is refused
    entries["fam_fold0"]["sha256"]["model.weights.h5"] = "f" * 64
    _register(tmp_path, monkeypatch, entries)
    with pytest.raises(InputError, match=r"the preset registry records f{64}"):
        from_preset("fam_fold0", **options)


# -- uploads ------------------------------------------------------------------------------------


class RecordingApi:
    """Stands in for huggingface_hub.HfApi and records the calls."""

    calls: list = []

    def __init__(self, endpoint=None, token=None, library_name=None):
        RecordingApi.calls.append(("init", {"endpoint": endpoint, "token": token}))

    def create_repo(self, repo_id, **kwargs):
        RecordingApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        RecordingApi.calls.append(("upload_folder", kwargs))

        class CommitInfo:
            oid = COMMIT

        return CommitInfo()

    def create_tag(self, repo_id, **kwargs):
        RecordingApi.calls.append(("create_tag", {"repo_id": repo_id, **kwargs}))


@pytest.fixture
def recording_api(monkeypatch):
    import huggingface_hub

    RecordingApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    return RecordingApi


def test_upload_validates_creates_uploads_and_tags(preset_dir, recording_api):
    commit = upload_preset(preset_dir, "hf://org/model", tag="v1", token="hf_x",
                           endpoint="http://127.0.0.1:9")
    assert commit == COMMIT
    names = [name for name, _ in recording_api.calls]
    assert names == ["init", "create_repo", "upload_folder", "create_tag"]
    calls = dict(recording_api.calls)
    assert calls["init"] == {"endpoint": "http://127.0.0.1:9", "token": "hf_x"}
    assert calls["create_repo"]["exist_ok"] is True
    assert calls["create_repo"]["repo_id"] == "org/model"
    assert sorted(calls["upload_folder"]["allow_patterns"]) == [
        "README.md", "config.json", "hnprog.json", "model.weights.h5"]
    assert calls["upload_folder"]["folder_path"] == str(preset_dir)
    assert calls["create_tag"]["tag"] == "v1"
    assert calls["create_tag"]["revision"] == COMMIT


@pytest.mark.parametrize(
    "uri, tag, message",
    [
        ("hf://org/model@v1", None, "main branch"),
        ("hf://org", None, "org/repo"),
        ("hf://org/model", "bad tag", "revision"),
        ("hf://org/model", COMMIT, "must not look like a commit"),
    ],
)
def test_upload_rejects_bad_targets(preset_dir, recording_api, uri, tag, message):
    with pytest.raises(InputError, match=message):
        upload_preset(preset_dir, uri, tag=tag)
    assert recording_api.calls == []


def test_upload_refuses_a_tampered_folder(preset_dir, recording_api):
    (preset_dir / "config.json").write_text("{}")
    with pytest.raises(InputError, match=r"sha256 mismatch for config\.json"):
        upload_preset(preset_dir, "hf://org/model")
    assert recording_api.calls == []


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_presets_list_download_upload(server, preset_dir, tmp_path, monkeypatch,
                                          recording_api):
    runner = CliRunner()
    monkeypatch.setattr(preset_registry, "REGISTRY_PATH", tmp_path / "none.json")
    result = runner.invoke(main, ["presets", "list"])
    assert result.exit_code == 0, result.output
    assert "No presets are registered" in result.output

    commit = server.add_folder("org/model", preset_dir)
    cache = tmp_path / "c"
    result = runner.invoke(main, ["download", "hf://org/model", "--endpoint", server.endpoint,
                                  "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert str(cache) in result.output and commit in result.output

    result = runner.invoke(main, ["download", "hf://org/nope", "--endpoint", server.endpoint,
                                  "--cache-dir", str(cache)])
    assert result.exit_code == 1
    assert "repository not found" in result.output

    result = runner.invoke(main, ["upload", str(preset_dir), "hf://org/model", "--tag", "v1"])
    assert result.exit_code == 0, result.output
    assert COMMIT in result.output
    assert f"hf://org/model@{COMMIT}" in result.output


@pytest.mark.hub
def test_real_hub_repository_not_found(tmp_path):  # pragma: no cover - opt-in network test
    if os.environ.get("HNPROG_HUB_TESTS") != "1":
        pytest.skip("set HNPROG_HUB_TESTS=1 to reach huggingface.co")
    with pytest.raises(InputError):
        hub.download_preset_files(HubReference("hnprog-tests/does-not-exist-0"),
                                  cache_dir=tmp_path)


# -- nothing reaches the public Hub unasked (issue #17, item 3) ---------------------------------


@pytest.fixture
def fresh_agent_registry(monkeypatch, tmp_path):
    """Make huggingface_hub fetch its agent registry again (it does so on the first request)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(_detect_agent, "_registry", None)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", False)  # conftest.py sets it
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agents.json"))


def test_offline_download_sends_nothing(monkeypatch, tmp_path, fresh_agent_registry):
    # Only --offline asks for offline mode here; the autouse guard fails the test on any
    # lookup of huggingface.co (the agent registry fetch used to send one).
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as read at import, without it
    result = CliRunner().invoke(main, ["download", "hf://org/model", "--offline",
                                       "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 1
    assert "not in the local Hugging Face cache" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_private_endpoint_is_the_only_host_reached(server, preset_dir, tmp_path,
                                                   fresh_agent_registry):
    commit = server.add_folder("org/model", preset_dir)
    [folder] = presets.download_preset(f"hf://org/model@{commit}", endpoint=server.endpoint,
                                       cache_dir=tmp_path / "cache")
    assert folder.name == commit
    # the library's own requests (the agent registry) went to the private endpoint too
    assert ("GET", "/api/agent-harnesses") in server.requests


def test_no_network_falls_back_to_the_cache_at_once(server, preset_dir, tmp_path):
    commit = server.add_folder("org/model", preset_dir)
    cache = tmp_path / "cache"
    presets.download_preset(f"hf://org/model@{commit}", endpoint=server.endpoint, cache_dir=cache)
    endpoint = server.endpoint
    server.stop()  # nothing listens there any more: no retries, the cache answers
    [folder] = presets.download_preset(f"hf://org/model@{commit}", endpoint=endpoint,
                                       cache_dir=cache)
    assert folder.name == commit
    with pytest.raises(InputError, match=f"cannot reach {endpoint}"):
        presets.download_preset("hf://org/other", endpoint=endpoint, cache_dir=cache)
