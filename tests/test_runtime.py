"""hnprog.runtime: the device probe and versions behind ``hnprog info`` (never raise)."""

from __future__ import annotations

import sys

from hnprog.runtime import KEY_PACKAGES, available_devices, package_versions


def test_a_backend_without_devices_of_its_own_computes_on_the_cpu():
    assert available_devices("numpy") == ["cpu"]


def test_a_backend_that_cannot_start_is_reported_not_raised(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` now raises ImportError
    devices = available_devices("jax")
    assert len(devices) == 1 and devices[0].startswith("unknown (")


def test_versions_of_the_key_packages_and_of_missing_ones():
    versions = package_versions((*KEY_PACKAGES, "no-such-distribution-hnprog"))
    assert list(versions)[: len(KEY_PACKAGES)] == list(KEY_PACKAGES)
    assert versions["click"][0].isdigit()
    assert versions["no-such-distribution-hnprog"] == "not installed"
