"""Deprecated: moved to :mod:`hnprog.presets.hub` (this shim goes in the next release)."""

import warnings

from hnprog.presets.format import METADATA_FILE
from hnprog.presets.hub import (
    HF_SCHEME,
    HubReference,
    cache_root,
    download_preset_files,
    parse_hf_uri,
    upload_preset,
    validate_repo_id,
    validate_revision,
)

warnings.warn("hnprog.hub is deprecated; import from hnprog.presets.hub (or hnprog.presets).",
              DeprecationWarning, stacklevel=2)

__all__ = [
    "HF_SCHEME",
    "METADATA_FILE",
    "HubReference",
    "cache_root",
    "download_preset_files",
    "parse_hf_uri",
    "upload_preset",
    "validate_repo_id",
    "validate_revision",
]
