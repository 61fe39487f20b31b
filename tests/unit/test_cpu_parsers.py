"""The CPU parsers against recorded /proc files (tests/unit/fixtures/gpu/README.md)."""

from __future__ import annotations

from ansible_collections.animaflow.inference.plugins.module_utils.cpu_parsers import (
    parse_cpuinfo,
    parse_meminfo,
)


def test_two_socket_xeon(fixture_text):
    assert parse_cpuinfo(fixture_text("cpuinfo_xeon_gold_6326_2s.txt"), "x86_64") == {
        "model": "Intel(R) Xeon(R) Gold 6326 CPU @ 2.90GHz",
        "architecture": "x86_64",
        "sockets": 2,
        "physical_cores": 32,
        "logical_cpus": 64,
        "avx": True,
        "avx2": True,
        "avx512f": True,
    }


def test_desktop_ryzen_has_avx2_but_no_avx512(fixture_text):
    facts = parse_cpuinfo(fixture_text("cpuinfo_ryzen9_5950x.txt"), "x86_64")
    assert facts["model"] == "AMD Ryzen 9 5950X 16-Core Processor"
    assert (facts["sockets"], facts["physical_cores"], facts["logical_cpus"]) == (1, 16, 32)
    assert (facts["avx"], facts["avx2"], facts["avx512f"]) == (True, True, False)


def test_hidden_core_ids_fall_back_to_cpu_cores_times_sockets():
    # Some hypervisors keep 'physical id' and 'cpu cores' but drop 'core id'.
    block = "processor\t: {n}\nmodel name\t: Intel Xeon\nphysical id\t: {s}\ncpu cores\t: 4\nflags\t\t: fpu avx\n\n"
    text = "".join(block.format(n=n, s=n // 8) for n in range(16))
    facts = parse_cpuinfo(text)
    assert (facts["sockets"], facts["physical_cores"], facts["logical_cpus"]) == (2, 8, 16)
    assert (facts["avx"], facts["avx2"]) == (True, False)


def test_no_topology_at_all_falls_back_to_logical_count():
    text = "processor\t: 0\nflags\t\t: sse2\n\nprocessor\t: 1\nflags\t\t: sse2\n"
    facts = parse_cpuinfo(text)
    assert (facts["sockets"], facts["physical_cores"], facts["logical_cpus"], facts["model"]) == (
        1,
        2,
        2,
        None,
    )


def test_arm64_features_line():
    text = (
        "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes sve\nCPU implementer\t: 0x41\n\n"
        "processor\t: 1\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes sve\nCPU implementer\t: 0x41\n"
    )
    facts = parse_cpuinfo(text, "aarch64")
    assert (facts["architecture"], facts["logical_cpus"], facts["avx"]) == ("aarch64", 2, False)


def test_empty_cpuinfo():
    assert parse_cpuinfo("") == {
        "model": None,
        "architecture": None,
        "sockets": 1,
        "physical_cores": 0,
        "logical_cpus": 0,
        "avx": False,
        "avx2": False,
        "avx512f": False,
    }


def test_meminfo_in_mib(fixture_text):
    assert parse_meminfo(fixture_text("meminfo_xeon.txt")) == {
        "memory_total_mib": 527952780 // 1024,
        "memory_available_mib": 510086544 // 1024,
    }
    assert parse_meminfo("") == {"memory_total_mib": None, "memory_available_mib": None}
