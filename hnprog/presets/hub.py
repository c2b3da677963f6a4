"""Hugging Face Hub access for presets: ``hf://`` URIs, downloads into the Hub cache, uploads.

A preset on the Hub is a model repository holding the same files as a local preset folder
(see :mod:`hnprog.presets.format`). hnprog addresses it as ``hf://org/repo`` or
``hf://org/repo@revision``, where the revision is a branch, a tag or, for anything that must be
reproducible, a full 40-hex commit id.

Downloads go through ``huggingface_hub.hf_hub_download`` into the ordinary Hugging Face cache
(``HF_HOME`` / ``HF_HUB_CACHE``, or ``cache_dir=``), one file at a time, starting with
``hnprog.json``, which lists the other files and their sha256. ``huggingface_hub`` writes each
file to a temporary name and renames it only once complete, so an interrupted download leaves
nothing half-written in the cache. Once a revision is cached it loads without a network: with
``HF_HUB_OFFLINE=1``, with ``local_files_only=True``, or automatically when the Hub cannot be
reached (one TCP connection is tried first, so a machine without a network goes to the cache
at once, not through retries). The endpoint comes from ``endpoint=``, else the ``HF_ENDPOINT``
environment variable (read at call time), else huggingface.co. For the duration of each call
huggingface_hub's own offline mode and endpoint are set to match, so offline means no request
at all and a private endpoint is the only host reached (the library's own side requests
included).

Nothing here trusts what it downloads: the file names listed in ``hnprog.json`` are checked
before anything is fetched (:func:`hnprog.presets.format.check_file_name`), and
:func:`hnprog.presets.from_preset` checks every file's sha256 before a model is built.

This module imports only :mod:`hnprog.presets.format` from the presets package.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hnprog.errors import InputError
from hnprog.presets.format import METADATA_FILE, parse_metadata, verify_preset

__all__ = [
    "HubReference",
    "cache_root",
    "download_preset_files",
    "parse_hf_uri",
    "upload_preset",
    "validate_repo_id",
    "validate_revision",
]

HF_SCHEME = "hf://"

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_NAME_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID_RE = re.compile(rf"^{_NAME_PART}/{_NAME_PART}$")
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


@dataclasses.dataclass(frozen=True)
class HubReference:
    """A model repository on the Hub and an optional revision.

    Args:
        repo_id: str. ``"org/repo"``.
        revision: str or None. A branch, a tag or a 40-hex commit id; None means ``"main"``.
    """

    repo_id: str
    revision: str | None = None

    @property
    def is_pinned(self) -> bool:
        """Whether the revision is a full commit id (immutable), not a branch or tag."""
        return self.revision is not None and bool(_COMMIT_RE.match(self.revision))

    def __str__(self) -> str:
        suffix = f"@{self.revision}" if self.revision else ""
        return f"{HF_SCHEME}{self.repo_id}{suffix}"


def validate_repo_id(repo_id: str) -> str:
    """Check that ``repo_id`` is a Hub model repository id of the form ``org/repo``.

    Both parts are 1-96 characters of letters, digits, ``.``, ``_`` and ``-``, start and end
    with a letter or digit, and contain neither ``--`` nor ``..`` (the Hub's own rules).

    Args:
        repo_id: str. The repository id.

    Returns:
        str. ``repo_id`` unchanged.

    Raises:
        InputError: if the id does not follow those rules.
    """
    if (
        not isinstance(repo_id, str)
        or not _REPO_ID_RE.match(repo_id)
        or "--" in repo_id
        or ".." in repo_id
    ):
        raise InputError(
            "A Hub repository id must look like 'org/repo' (letters, digits, '.', '_', '-'; "
            f"no '--' or '..'; at most 96 characters per part). Received: repo_id={repo_id!r}"
        )
    return repo_id


def validate_revision(revision: str, *, require_commit: bool = False) -> str:
    """Check that ``revision`` is a full commit id or a safe branch or tag name.

    Args:
        revision: str. A 40-hex commit id, or a branch or tag name (letters, digits, ``.``,
            ``_``, ``-`` and ``/``; no ``..``, ``//``, trailing ``/`` or ``.lock`` suffix).
        require_commit: bool. Accept only a full lowercase 40-hex commit id, as the registry
            requires. Defaults to False.

    Returns:
        str. ``revision`` unchanged.

    Raises:
        InputError: if the revision is not acceptable.
    """
    if not isinstance(revision, str):
        raise InputError(f"A revision must be a string. Received: revision={revision!r}")
    if _COMMIT_RE.match(revision):
        return revision
    if require_commit:
        raise InputError(
            "A pinned revision must be a full 40-character lowercase hexadecimal commit id. "
            f"Received: revision={revision!r}"
        )
    if (
        not _REF_RE.match(revision)
        or ".." in revision
        or "//" in revision
        or revision.endswith(("/", ".lock"))
    ):
        raise InputError(
            "A revision must be a 40-hex commit id or a branch or tag name (letters, digits, "
            f"'.', '_', '-', '/'; no '..'). Received: revision={revision!r}"
        )
    return revision


def parse_hf_uri(uri: str) -> HubReference:
    """Split ``hf://org/repo[@revision]`` into a validated :class:`HubReference`.

    Args:
        uri: str. The URI.

    Returns:
        HubReference. The repository id and the revision (None when not given).

    Raises:
        InputError: if the URI does not start with ``hf://`` or its id or revision is invalid.

    Example:
        >>> parse_hf_uri("hf://hnprog/unet3d_synthetic_petct@v1")
        HubReference(repo_id='hnprog/unet3d_synthetic_petct', revision='v1')
    """
    if not isinstance(uri, str) or not uri.startswith(HF_SCHEME):
        raise InputError(f"A Hub URI must start with 'hf://'. Received: uri={uri!r}")
    body = uri[len(HF_SCHEME) :]
    repo_id, sep, revision = body.partition("@")
    validate_repo_id(repo_id)
    if sep:
        validate_revision(revision)
        return HubReference(repo_id, revision)
    return HubReference(repo_id, None)


def _offline_requested() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@contextlib.contextmanager
def _hub_mode(*, endpoint: str | None, offline: bool) -> Iterator[None]:
    """Set huggingface_hub's own offline mode and endpoint for one call, then restore them.

    ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` once, at import, and
    some of its requests (building the request headers fetches a registry of agent names)
    go to that endpoint whatever ``endpoint=`` says. Offline, every request of the library
    is refused; with a private endpoint, those requests go to it, so nothing reaches the
    public Hub unasked. (Not thread-safe: the settings are the library's module globals.)
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE, constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE
    constants.HF_HUB_OFFLINE = bool(offline)
    if endpoint:
        constants.ENDPOINT = endpoint.rstrip("/")
        constants.HUGGINGFACE_CO_URL_TEMPLATE = (
            constants.ENDPOINT + "/{repo_id}/resolve/{revision}/{filename}")
    try:
        yield
    finally:
        (constants.HF_HUB_OFFLINE, constants.ENDPOINT,
         constants.HUGGINGFACE_CO_URL_TEMPLATE) = saved


def _unreachable(endpoint: str | None, timeout: float = 5.0) -> str | None:
    """Why the Hub at ``endpoint`` cannot be reached (one TCP connection), or None if it can.

    Checked once per download, so that a machine without a network goes to the cache at
    once instead of through huggingface_hub's retries (five, with back-off, ~25 s per file).
    """
    import socket
    import urllib.parse

    from huggingface_hub import constants

    url = urllib.parse.urlsplit(endpoint or constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{url.hostname}:{port}: {exc.strerror or exc}"


def _hub_download(
    reference: HubReference,
    filename: str,
    *,
    cache_dir: str | os.PathLike | None,
    endpoint: str | None,
    local_files_only: bool,
) -> Path:
    """Fetch one file of ``reference`` into the cache, falling back to the cache when offline."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        with _hub_mode(endpoint=endpoint, offline=local_files_only):
            path = hf_hub_download(
                repo_id=reference.repo_id,
                filename=filename,
                revision=reference.revision,
                cache_dir=None if cache_dir is None else str(cache_dir),
                endpoint=endpoint,
                local_files_only=local_files_only,
                library_name="hnprog",
            )
        return Path(path)
    except RepositoryNotFoundError:
        raise InputError(
            f"{reference}: repository not found on {endpoint or 'the Hub'} (or it is private "
            "and no valid token was given)."
        ) from None
    except RevisionNotFoundError:
        raise InputError(f"{reference}: revision {reference.revision!r} not found.") from None
    except LocalEntryNotFoundError:
        # huggingface_hub already fell back to the cache after a connection error.
        raise InputError(
            f"{reference}: cannot reach {endpoint or 'the Hub'} (or offline mode is on) and "
            f"{filename!r} of this revision is not in the local Hugging Face cache. Connect "
            "once, or point cache_dir/HF_HOME at a cache that holds it."
        ) from None
    except EntryNotFoundError:
        raise InputError(f"{reference}: the repository has no file {filename!r}.") from None
    except (HfHubHTTPError, OSError, *_network_errors()) as exc:
        # Includes truncated downloads (size check or broken connection after retries).
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{reference}: downloading {filename!r} failed: {first_line}") from None


def _network_errors() -> tuple[type[Exception], ...]:
    """The HTTP client's transport errors (httpx2 in huggingface_hub 2.x, requests before)."""
    errors: list[type[Exception]] = []
    for module_name, class_name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"),
                                    ("requests", "RequestException")):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        errors.append(getattr(module, class_name))
    return tuple(errors)


def download_preset_files(
    reference: HubReference,
    *,
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    local_files_only: bool = False,
) -> Path:
    """Download the files of a preset repository into the Hugging Face cache.

    ``hnprog.json`` is fetched first; the other files are those it lists under ``files``.
    The file names are checked before anything else is fetched; the sha256 checks are done
    by the caller (:func:`hnprog.presets.format.verify_preset`).

    Args:
        reference: HubReference. The repository and revision (None means ``"main"``).
        cache_dir: str or PathLike, optional. Hugging Face cache folder. Defaults to the
            Hugging Face default (``HF_HUB_CACHE``, ``HF_HOME/hub`` or
            ``~/.cache/huggingface/hub``).
        endpoint: str, optional. Hub URL. Defaults to ``HF_ENDPOINT`` or huggingface.co.
        local_files_only: bool. Use the cache only, never the network. Also enabled by
            ``HF_HUB_OFFLINE=1``. Defaults to False.

    Returns:
        pathlib.Path. The cached snapshot folder of the resolved commit, holding the files.

    Raises:
        InputError: if the repository, revision or a file cannot be found or downloaded and
            is not cached, or ``hnprog.json`` is not valid JSON listing the files.
    """
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    local_files_only = local_files_only or _offline_requested()
    if not local_files_only and _unreachable(endpoint) is not None:
        local_files_only = True  # no network: the cache or one clear line, no retries
    options = dict(cache_dir=cache_dir, endpoint=endpoint, local_files_only=local_files_only)

    metadata_path = _hub_download(reference, METADATA_FILE, **options)
    # checks every listed name before any other file is fetched
    files = parse_metadata(metadata_path.read_bytes(), reference)["files"]
    snapshot = metadata_path.parent
    for filename in files:
        path = _hub_download(reference, filename, **options)
        if path.parent != snapshot:
            raise InputError(
                f"{reference}: the revision moved while downloading ({filename!r} came from "
                f"commit {path.parent.name}, {METADATA_FILE} from {snapshot.name}). Pin a "
                "commit id with hf://org/repo@<commit>."
            )
    return snapshot


def cache_root(folder: str | os.PathLike) -> Path | None:
    """The repository folder of a Hugging Face cache snapshot, else None.

    In the cache, ``<cache>/models--org--repo/snapshots/<commit>/<file>`` is a symlink to
    ``../../blobs/<etag>``; the repository folder ``models--org--repo`` is then where a
    snapshot's files may resolve to (the ``root`` of
    :func:`hnprog.presets.format.preset_file`).

    Args:
        folder: str or PathLike. A preset folder.

    Returns:
        pathlib.Path or None. ``<cache>/models--org--repo`` for a snapshot folder, None for
        any other folder.
    """
    folder = Path(folder)
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent
    return None


def upload_preset(
    folder: str | os.PathLike,
    uri: str,
    *,
    tag: str | None = None,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Validate a preset folder, then create the Hub repository, upload it and tag a release.

    Only the preset's own files (``hnprog.json`` and the files it lists) are uploaded. The
    returned commit id is what a registry entry pins.

    Args:
        folder: str or PathLike. A preset folder written by
            :func:`hnprog.presets.save_to_preset`.
        uri: str. ``hf://org/repo`` (a revision is not allowed: uploads go to ``main``).
        tag: str, optional. A release tag to create on the new commit, e.g. ``"v1"``.
            Defaults to None (no tag).
        private: bool. Create the repository as private. Defaults to False.
        token: str, optional. A Hub token with write access. Defaults to the token that
            huggingface_hub finds (``HF_TOKEN`` or ``hf auth login``).
        endpoint: str, optional. Hub URL. Defaults to ``HF_ENDPOINT`` or huggingface.co.
        commit_message: str, optional. Defaults to ``"Upload hnprog preset <name>"``.

    Returns:
        str. The 40-hex id of the commit that holds the upload.

    Raises:
        InputError: if the folder is not a valid preset (a file missing or its sha256 not
            matching ``hnprog.json``), the URI, repository id or tag is invalid, or the Hub
            refuses the upload.

    Example:
        >>> commit = upload_preset("presets/fold0", "hf://my-lab/unet3d_hecktor_petct_fold0",
        ...                        tag="v1")  # doctest: +SKIP
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    reference = parse_hf_uri(uri)
    if reference.revision is not None:
        raise InputError(
            "Uploads go to the repository's main branch; use tag= to name a release. "
            f"Received: uri={uri!r}"
        )
    if tag is not None:
        validate_revision(tag)
        if _COMMIT_RE.match(tag):
            raise InputError(f"A tag must not look like a commit id. Received: tag={tag!r}")
    metadata = verify_preset(folder, root=cache_root(folder))
    folder = Path(folder)
    files = [METADATA_FILE, *metadata["files"]]
    message = commit_message or f"Upload hnprog preset {metadata.get('name', folder.name)}"
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    api = HfApi(endpoint=endpoint, token=token, library_name="hnprog")
    with _hub_mode(endpoint=endpoint, offline=_offline_requested()):
        try:
            api.create_repo(reference.repo_id, repo_type="model", private=private, exist_ok=True)
            commit = api.upload_folder(
                repo_id=reference.repo_id,
                repo_type="model",
                folder_path=str(folder),
                allow_patterns=files,
                commit_message=message,
            )
            commit_id = _commit_id(commit)
            if tag is not None:
                api.create_tag(
                    reference.repo_id,
                    tag=tag,
                    revision=commit_id,
                    tag_message=message,
                    repo_type="model",
                    exist_ok=False,
                )
        except HfHubHTTPError as exc:
            text = str(exc).strip()
            first_line = text.splitlines()[0] if text else type(exc).__name__
            raise InputError(f"{reference}: the Hub refused the upload: {first_line}") from None
    return commit_id


def _commit_id(commit: Any) -> str:
    """The commit id of an ``upload_folder`` result (a CommitInfo, or a URL in old versions)."""
    oid = getattr(commit, "oid", None)
    if oid is None:
        match = re.search(r"/commit/([0-9a-f]{40})", str(commit))
        oid = match.group(1) if match else None
    if oid is None or not _COMMIT_RE.match(oid):
        raise InputError(f"The Hub did not return a commit id for the upload. Received: {commit!r}")
    return oid
