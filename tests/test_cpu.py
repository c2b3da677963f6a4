"""hnprog turns TensorFlow's oneDNN kernels on before TensorFlow loads, unless the user decided."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hnprog import cpu
from hnprog.cpu import cpu_vector_extensions, onednn_status

PROBE = (
    "import os, sys; import hnprog; "
    "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS')); print('tensorflow' in sys.modules)"
)


def _run(env_value: str | None, code: str = PROBE) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, timeout=120)
    return done.stdout.split()


def test_import_hnprog_turns_onednn_on_without_importing_tensorflow():
    assert _run(None) == ["1", "False"]


@pytest.mark.parametrize("value", ["0", "1"])
def test_a_user_setting_is_kept(value):
    assert _run(value)[0] == value


def test_the_cli_sets_it_before_tensorflow_starts():
    code = ("import os; from hnprog.cli import main; import tensorflow; "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'])")
    assert _run(None, code)[-1] == "1"


def test_tensorflow_already_imported_is_left_alone():
    code = ("import os, sys; sys.modules['tensorflow'] = object(); import hnprog; "
            "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset'))")
    assert _run(None, code) == ["unset"]


def test_tensorflow_imported_first_without_onednn_gets_a_warning():
    """``import keras`` before hnprog: TensorFlow has decided; hnprog says so when it is off
    (TensorFlow's default on AVX2-only CPUs), and stays quiet where TensorFlow turned it on."""
    code = ("import tensorflow; from tensorflow.python.util import _pywrap_util_port as p; "
            "print(p.IsMklEnabled()); import hnprog")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                          capture_output=True, text=True, check=True, timeout=120)
    tensorflow_uses_onednn = done.stdout.split()[-1] == "True"
    assert ("runs without its oneDNN kernels" in done.stderr) is not tensorflow_uses_onednn


def test_the_warning_names_the_fix(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    monkeypatch.setattr(cpu, "tensorflow_onednn_active", lambda: False)
    with pytest.warns(RuntimeWarning, match="Import hnprog before keras.*TF_ENABLE_ONEDNN_OPTS=1"):
        assert cpu.enable_onednn() is False
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    assert onednn_status().startswith("off: TensorFlow's default")
    monkeypatch.setattr(cpu, "tensorflow_onednn_active", lambda: True)
    assert onednn_status().startswith("on: TensorFlow's default")


def test_onednn_status_words(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert onednn_status().startswith("off")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert onednn_status().startswith("on")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert "default" in onednn_status()


AVX2_ONLY = "processor : 0\nflags : fpu sse4_2 avx avx2 fma f16c\n"
AMX = "flags : sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16\n"


def test_cpu_vector_extensions_from_cpuinfo():
    assert cpu_vector_extensions(AVX2_ONLY) == ["SSE4.2", "AVX", "AVX2", "FMA"]
    assert cpu_vector_extensions(AMX) == ["SSE4.2", "AVX", "AVX2", "FMA", "AVX-512F",
                                          "AVX-512 VNNI", "AVX-512 BF16", "AMX", "AMX-BF16"]
    assert cpu_vector_extensions("no flags here") == []


def test_machine_signature_names_what_a_timing_depends_on(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    signature = cpu.machine_signature()
    assert set(signature) == {"cpu", "cpu_model", "vector_extensions", "logical_cpus", "onednn"}
    assert signature["onednn"] is False and signature["logical_cpus"] == os.cpu_count()
    assert signature["vector_extensions"] == cpu_vector_extensions()
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    assert cpu.machine_signature()["onednn"] is None
