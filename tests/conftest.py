"""Shared pytest fixtures. Tests use tiny volumes (32^3 or smaller) and run on the CPU."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def synthetic_cohort(tmp_path_factory):
    """The tiny synthetic cohort (3 patients, half resolution), written once per session.

    Read-only: a test that changes files copies it first.
    """
    from hnprog.testing.cohorts import tiny_synthetic_cohort

    return tiny_synthetic_cohort(tmp_path_factory.mktemp("synthetic-cohort"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
