"""Shared pytest fixtures. Tests use tiny volumes (32^3 or smaller) and run on the CPU.

No test reaches the network: the Hugging Face offline variables are set before any test
imports ``huggingface_hub``, and :func:`_no_network` refuses every socket connection and name
lookup that is not loopback, so a test that reaches out fails naming the host, even where
the code under test swallows the error (huggingface_hub does, for some of its requests). Tests that
talk to the loopback Hub (:mod:`hnprog.testing.loopback_hub`) unset ``HF_HUB_OFFLINE`` for
themselves; the opt-in ``hub`` tests run with the network when ``HNPROG_HUB_TESTS=1``.
"""

from __future__ import annotations

import ipaddress
import os
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# before any test module imports keras: turns TensorFlow's oneDNN kernels on (off by default
# on AVX2-only CPUs, where the suite then ran about twice as long)
import hnprog  # noqa: E402,F401

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: object) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard address
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class NetworkBlocked(OSError):
    """A test tried to reach a host that is not loopback."""


@pytest.fixture(autouse=True)
def _no_network(request, monkeypatch):
    """Refuse name lookups and connections to anything but loopback for every test."""
    if request.node.get_closest_marker("hub") and os.environ.get("HNPROG_HUB_TESTS") == "1":
        yield
        return
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    attempts: list[str] = []

    def refuse(host: object) -> NetworkBlocked:
        attempts.append(repr(host))
        return NetworkBlocked(f"test {request.node.nodeid} tried to reach {host!r}: tests "
                              "may use loopback addresses only")

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            raise refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if not _is_loopback(host):
                raise refuse(host)

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield
    if attempts:
        pytest.fail(f"the test tried to reach the network: {sorted(set(attempts))}")


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
