"""Environment capture and the device tag results are filed under (torch-free)."""

from __future__ import annotations

import json
import re

from edgecnn.bench import environment as env

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz
physical id\t: 0
core id\t: 0
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni amx_tile amx_int8 amx_bf16
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz
physical id\t: 0
core id\t: 0
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni amx_tile amx_int8 amx_bf16
processor\t: 2
physical id\t: 0
core id\t: 1
"""
PI5 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU part\t: 0xd0b
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def test_cpuinfo_parsing_x86(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(XEON)
    assert {"avx512_vnni", "amx_int8", "avx2"} <= env.cpu_flags(f)
    assert env.cpu_model(f) == "Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz"
    assert env.physical_cores(f) == 2  # three logical CPUs, two (package, core) pairs


def test_cpuinfo_parsing_arm(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(PI5)
    assert {"asimd", "asimddp"} <= env.cpu_flags(f)
    assert env.cpu_model(f) == "Raspberry Pi 5 Model B Rev 1.0"


def test_missing_cpuinfo_gives_no_flags(tmp_path):
    assert env.cpu_flags(tmp_path / "absent") == set()


def test_device_tag_from_recorded_environments():
    xeon = {"cpu": "Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz", "physical_cores": 4,
            "isa": ["avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"]}
    assert env.device_tag(xeon) == "intel-xeon-platinum-8480c-4c-amx"
    epyc = {"cpu": "AMD EPYC", "physical_cores": 2, "isa": ["avx2", "avx512f", "avx512_vnni"]}
    assert env.device_tag(epyc) == "amd-epyc-2c-avx512vnni"
    # the same machine kind without VNNI gets its own folder
    assert env.device_tag({**epyc, "isa": ["avx2"]}) == "amd-epyc-2c-avx2"
    assert env.device_tag({"cpu": "Raspberry Pi 5 Model B Rev 1.0", "physical_cores": 4,
                           "isa": ["asimd", "asimddp"]}) == "raspberry-pi-5-model-b-4c-dotprod"
    assert env.device_tag({"cpu": "", "isa": []}) == "unknown-1c-base"


def test_device_tag_is_filesystem_safe_and_stable():
    weird = {"cpu": "Wéird/CPU*name: ../../etc @ 3GHz " + "x" * 100, "physical_cores": 8, "isa": ["neon"]}
    tag = env.device_tag(weird)
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", tag) and len(tag) < 64 and "--" not in tag
    assert tag.endswith("-8c-neon")
    assert env.device_tag() == env.device_tag()
    assert env.device_tag() == env.device_tag(env.capture())


def test_capture_is_json_ready_and_complete():
    d = env.capture()
    json.dumps(d)
    for key in ("cpu", "physical_cores", "logical_cores", "isa", "os", "python", "onnxruntime", "providers",
                "numpy", "edgecnn", "git_commit", "hostname", "load_average"):
        assert key in d
    assert "CPUExecutionProvider" in d["providers"]
    assert set(d["isa"]) <= set(env.ISA_FLAGS)
    assert d["physical_cores"] <= d["logical_cores"]


def test_the_int8_kernel_choice_reads_the_one_cpu_flags(monkeypatch):
    """quantize's kernel choice starts from bench.environment's reading of /proc/cpuinfo (one reader),
    then lets CPUID overrule it (edgecnn.int8_kernel.process_flags)."""
    from edgecnn import int8_kernel

    monkeypatch.setattr(env, "cpu_flags", lambda: {"fma", "avx2", "from-the-one-reader"})
    monkeypatch.setattr(int8_kernel, "cpuid_flags", lambda: None)  # no CPUID: the listed flags stand
    assert int8_kernel.process_flags() == {"fma", "avx2", "from-the-one-reader"}
