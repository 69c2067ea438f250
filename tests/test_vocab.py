"""The one vocabulary: kernel versions, zcrx features, zero copy, place; the C header and the load
generator agree with it; the probes' metric ids come from Python."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from zcrxprof import paths, vocab
from zcrxprof.errors import UsageError
from zcrxprof.probes import TOOLS, tool_class

ROOT = paths.checkout()
LOADGEN_DIR = ROOT / "loadgen"


@pytest.mark.parametrize("release, version", [
    ("6.18.44+deb13-amd64", (6, 18)),
    ("7.3.4+deb13-amd64", (7, 3)),
    ("7.1.0-rc3", (7, 1)),
    ("6.1.0-28-cloud-amd64", (6, 1)),
    ("10.0", (10, 0)),
])
def test_kernel_releases_parse_to_major_minor(release, version):
    assert vocab.parse_kernel_version(release) == version


@pytest.mark.parametrize("bad", ["", "linux", "7", "7.x.1", "amd64-7.1"])
def test_a_string_that_is_no_kernel_release_is_a_usage_error(bad):
    with pytest.raises(UsageError, match="not a kernel version"):
        vocab.parse_kernel_version(bad)


def test_features_follow_the_kernel_version():
    assert vocab.kernel_features("6.18.44+deb13-amd64") == ["zcrx", "query"]
    assert "NODEV" in vocab.missing_features("6.18.44+deb13-amd64")
    assert vocab.kernel_has("7.1.0-rc3", "NODEV") and not vocab.kernel_has("7.1.0-rc3", "events/stats")
    assert vocab.missing_features("7.3.4+deb13-amd64") == []
    assert vocab.kernel_features("6.14.0") == []
    # every backend's requirement is a known feature
    assert {f for f in vocab.BACKEND_NEEDS.values() if f} <= set(vocab.ZCRX_FEATURES)
    assert set(vocab.BACKEND_NEEDS) == set(vocab.BACKENDS)


def test_only_zcrx_is_zero_copy():
    assert [b for b in vocab.BACKENDS if vocab.is_zero_copy(b)] == ["zcrx"]
    assert not vocab.is_zero_copy("auto")


def test_topology_order_puts_known_names_first_in_vocabulary_order():
    assert vocab.topology_order(["shared-ifq", "x", "single", "single"]) == ["single", "shared-ifq", "x"]
    assert vocab.HOT_TOPOLOGIES == ("single", "ifq-per-ring", "shared-ifq")
    assert vocab.MULTI_RING_TOPOLOGIES == ("ifq-per-ring", "shared-ifq")


def test_emulated_is_a_list_stored_as_one_string():
    tokens = ["shared-ifq", vocab.EMULATED_TIMING_TOKEN]
    assert vocab.split_emulated(vocab.join_emulated(tokens)) == tokens
    assert vocab.join_emulated([]) == "" and vocab.split_emulated("") == [] and vocab.split_emulated(None) == []
    assert vocab.place_emulated("tcg") == [vocab.EMULATED_TIMING_TOKEN]
    assert vocab.place_emulated("kvm") == vocab.place_emulated("") == []


def test_place_and_accelerator_come_from_the_lab_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(vocab.LAB_ENV, raising=False)
    assert (vocab.place(), vocab.accelerator()) == ("host", "")
    monkeypatch.setenv(vocab.LAB_ENV, "7.3.4+deb13-amd64")
    clocks = tmp_path / "available_clocksource"
    monkeypatch.setattr(vocab, "CLOCKSOURCES", clocks)
    clocks.write_text("tsc hpet acpi_pm\n")
    assert (vocab.place(), vocab.accelerator()) == ("lab", "tcg")
    assert vocab.is_emulated_timing(vocab.accelerator())
    clocks.write_text("kvm-clock tsc hpet acpi_pm\n")
    assert vocab.accelerator() == "kvm" and not vocab.is_emulated_timing("kvm")


def test_committed_c_header_equals_the_generated_one():
    out = subprocess.run([sys.executable, "-m", "zcrxprof.vocab", "c-header"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert (LOADGEN_DIR / "vocab.h").read_text() == out, "loadgen/vocab.h is stale: run `make -C loadgen vocab`"


def test_vocab_command_refuses_anything_else_in_one_line():
    res = subprocess.run([sys.executable, "-m", "zcrxprof.vocab", "python"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr


def test_c_sources_spell_no_topology_or_backend_name():
    """The names reach C only through vocab.h ("copy" and "workers" are also other words there: a zcrx
    event, an option, a JSON key)."""
    names = (set(vocab.TOPOLOGIES) | set(vocab.BACKENDS) | {vocab.EMULATED_NIC_TOKEN}) - {"copy", "workers"}
    spelled = []
    for src in sorted(LOADGEN_DIR.glob("*.[ch]")):
        if src.name == "vocab.h":
            continue
        code = re.sub(r"/\*.*?\*/", "", src.read_text(), flags=re.S)   # comments may mention them
        if src.name == "options.c":
            code = code.split("static const char usage_text[]")[0] + code.split('"Exit status')[1]
        spelled += [f"{src.name}: {m}" for m in re.findall(r'"([a-z-]+)"', code) if m in names]
    assert spelled == []


@pytest.fixture(scope="module")
def loadgen_binary():
    res = subprocess.run(["make", "-s", "-C", str(LOADGEN_DIR)], capture_output=True, text=True)
    binary = LOADGEN_DIR / "zcrx-loadgen"
    if res.returncode != 0 or not binary.exists():
        pytest.fail(f"zcrx-loadgen does not build: {res.stderr.strip()[:400]}")
    return binary


def test_load_generator_accepts_exactly_the_vocabulary_topologies(loadgen_binary):
    res = subprocess.run([loadgen_binary, "--topology", "no-such"], capture_output=True, text=True)
    assert res.returncode == 2
    listed = re.search(r"unknown 'no-such' \(([^)]*)\)", res.stderr).group(1).split(", ")
    assert tuple(listed) == vocab.TOPOLOGIES
    usage = subprocess.run([loadgen_binary, "--help"], capture_output=True, text=True).stdout
    assert " | ".join(vocab.TOPOLOGIES) in usage and " | ".join(vocab.BACKENDS) in usage


def test_load_generator_accepts_exactly_the_vocabulary_backends(loadgen_binary):
    res = subprocess.run([loadgen_binary, "--backend", "no-such", "--duration", "0.01"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    listed = re.search(r"unknown --backend 'no-such' \(([^)]*)\)", res.stderr).group(1).split(", ")
    assert tuple(listed) == vocab.BACKENDS


@pytest.mark.parametrize("name", list(TOOLS))
def test_probe_ids_come_from_python_only(name):
    """A BPF program defines no metric, histogram or state id of its own and uses only the ones its
    Python tool passes as -D flags (and every one the tool counts is used)."""
    tool = tool_class(name)(pids=[])
    given = {d.split("=")[0] for d in tool.id_defines()}
    program = (paths.probes_dir() / f"{name}.bpf.c").read_text()
    common = (paths.probes_dir() / "common.h").read_text()
    assert not re.findall(r"^\s*#\s*define\s+(?:[MHS]_\w+|NBUCKETS|FILTER_TGID|FILTER_TID)\b", program + common, re.M)
    used = set(re.findall(r"\b[MHS]_[A-Z0-9_]+\b", re.sub(r"/\*.*?\*/", "", program, flags=re.S)))
    assert used <= given
    assert {d for d in given if d[:2] in ("M_", "H_", "S_")} <= used
    assert {"NBUCKETS", "FILTER_TGID", "FILTER_TID", "NSTATE"} <= given


def test_vocabulary_and_paths_import_without_the_data_stack():
    """The set-up scripts (system python3) and the C header generator need neither pandas nor numpy."""
    code = "import sys, zcrxprof.vocab, zcrxprof.paths; print(sorted({'pandas', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def test_paths_in_a_checkout_stay_in_the_checkout(monkeypatch):
    monkeypatch.delenv("ZCRXPROF_DATASETS", raising=False)
    monkeypatch.setenv("ZCRXPROF_HOME", "/nonexistent/home")      # a checkout wins over it
    assert paths.datasets_root() == ROOT / "datasets" and paths.build_dir() == ROOT / ".build"
    assert paths.loadgen_binary() == ROOT / "loadgen" / "zcrx-loadgen"
    monkeypatch.setenv("ZCRXPROF_DATASETS", "/data/zcrx")
    assert paths.datasets_root() == Path("/data/zcrx")


def test_paths_without_a_checkout_follow_zcrxprof_home_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "checkout", lambda: None)
    monkeypatch.delenv("ZCRXPROF_DATASETS", raising=False)
    monkeypatch.setenv("ZCRXPROF_HOME", str(tmp_path / "zh"))
    assert paths.datasets_root() == tmp_path / "zh" / "datasets" and paths.build_dir() == tmp_path / "zh" / "build"
    monkeypatch.delenv("ZCRXPROF_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.datasets_root() == tmp_path / "data" / "zcrxprof" / "datasets"
    assert paths.build_dir() == tmp_path / "cache" / "zcrxprof"
    assert paths.loadgen_source_dir() is None and paths.versions_env() is None
    monkeypatch.setenv("PATH", str(tmp_path))      # no zcrx-loadgen on PATH
    assert paths.loadgen_binary() == tmp_path / "cache" / "zcrxprof" / "bin" / "zcrx-loadgen"
    monkeypatch.setenv("ZCRXPROF_CACHE", str(tmp_path / "dl"))
    assert paths.cache_dir() == tmp_path / "dl"
