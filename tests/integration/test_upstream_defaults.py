"""The defaults install from upstream with no artifact mirror: only the base URL is pointed elsewhere.

A local HTTP server (tests/infra/upstream_server.py) serves files under the forge's own path layout
(`<base>/ggml-org/llama.cpp/archive/<commit>.tar.gz`, `<base>/ollama/ollama/releases/download/v<V>/...`);
each role's real preflight (upstream/preflight.yml, on a local connection with a recorded node's facts)
fetches from it into a fresh controller cache. The served bytes are not the forge's, so with the pinned
upstream sha256 the preflight must stop naming that sha256, and with the served file's sum it must
succeed. Nothing is built or installed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playbook_runner import run_playbook
from upstream_server import start  # tests/infra, put on sys.path by conftest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).resolve().parent / "upstream" / "preflight.yml"
MIRROR = ROOT / ".cache" / "mirror"

# Upstream identities the defaults must pin (shared notes: backends).
LLAMACPP_TAG = "b11312"
LLAMACPP_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"
LLAMACPP_UPSTREAM_SHA256 = "6a85ec945b57789c875e1af90e66109fbf136a3c79802d5ca0333b043e10407f"
OLLAMA_VERSION = "0.32.15"
OLLAMA_AMD64_SHA256 = "50539c5fe9bf85887733355098dcdb266b433cb8c73fa180713417e9ed6e42bb"
OLLAMA_RELEASES = "ollama/ollama/releases/download"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Upstream:
    """A directory in the forge's layout, served on 127.0.0.1, with a log of the paths requested."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root.parent / "requests.log"
        self.server = start(root, self.log)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, path: str, data: bytes) -> str:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return sha256(data)

    def requested(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    site = Upstream(tmp_path / "site")
    site.root.mkdir(exist_ok=True)
    yield site
    site.server.shutdown()


def preflight(
    tmp_path: Path, upstream: Upstream, backend: str, facts: str, **extra: object
) -> tuple[dict[str, str], Path]:
    """Run the backend's preflight with no mirror and a fresh controller cache; its result files and the cache."""
    model = b"placeholder gguf: preflight only checks its sha256 and size\n"
    model_sum = upstream.put("models/tiny.gguf", model)
    inventory = {
        "all": {
            "hosts": {facts: {"ansible_connection": "local"}},
            "vars": {
                "ansible_python_interpreter": str(ROOT / ".venv" / "bin" / "python"),
                "animaflow_bind_address": "127.0.0.1",
                "animaflow_api_key": "upstream-test-key",
                "animaflow_model": "tiny",
                "animaflow_models": [
                    {
                        "name": "tiny",
                        "url": f"{upstream.url}/models/tiny.gguf",
                        "sha256": model_sum,
                        "format": "gguf",
                        "context": 256,
                    }
                ],
            },
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    cache = tmp_path / "controller-cache"
    result = tmp_path / "result"
    extra_vars = {"preflight_backend": backend, "preflight_facts": facts, "result_dir": str(result), **extra}
    proc = run_playbook(
        PLAYBOOK,
        inventory=tmp_path / "inventory.json",
        extra_vars=extra_vars,
        env={"ANIMAFLOW_CACHE_DIR": str(cache), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    files = {p.name: " ".join(p.read_text().split()) for p in result.glob("*")}
    return files, cache


@pytest.fixture
def llamacpp_tree(upstream: Upstream) -> tuple[str, str]:
    """The mirror's b11312 tree served where the forge keeps the commit's archive; (path, its sha256)."""
    tarball = MIRROR / "llamacpp" / f"llama.cpp-{LLAMACPP_TAG}.tar.gz"
    if not tarball.exists():
        pytest.skip(f"{tarball} is missing (tests/infra/prepare-mirror.py puts it there)")
    path = f"ggml-org/llama.cpp/archive/{LLAMACPP_COMMIT}.tar.gz"
    return path, upstream.put(path, tarball.read_bytes())


def test_llamacpp_default_stops_on_the_pinned_upstream_sha256(tmp_path, upstream, llamacpp_tree):
    path, served = llamacpp_tree
    files, cache = preflight(tmp_path, upstream, "llamacpp", "cpu", llamacpp_source_base_url=upstream.url)
    refusal = files["refused.txt"]
    assert f"Checksum mismatch for llama.cpp-{LLAMACPP_TAG}.tar.gz from {upstream.url}/{path}:" in refusal
    assert f"expected sha256 {LLAMACPP_UPSTREAM_SHA256}, got {served}." in refusal
    assert "Nothing was changed on the nodes" in refusal
    assert f"GET /{path}" in upstream.requested()
    # Nothing of the bad download stays in the cache.
    assert not [p for p in (cache / "llamacpp").rglob("*") if p.is_file()]


def test_llamacpp_fetches_the_commit_archive_with_its_sha256(tmp_path, upstream, llamacpp_tree):
    path, served = llamacpp_tree
    files, cache = preflight(
        tmp_path,
        upstream,
        "llamacpp",
        "cpu",
        llamacpp_source_base_url=upstream.url,
        llamacpp_versions={LLAMACPP_TAG: {"commit": LLAMACPP_COMMIT, "sha256": served}},
    )
    assert "passed.txt" in files, files.get("refused.txt")
    cached = cache / "llamacpp" / f"llama.cpp-{LLAMACPP_TAG}.tar.gz"
    assert sha256(cached.read_bytes()) == served
    assert f"GET /{path}" in upstream.requested()


def test_ollama_default_stops_on_the_pinned_upstream_sha256(tmp_path, upstream):
    release = f"{OLLAMA_RELEASES}/v{OLLAMA_VERSION}"
    served = upstream.put(f"{release}/ollama-linux-amd64.tar.zst", b"not the real archive\n")
    # A sha256sum.txt that vouches for the served bytes must not override the pin.
    upstream.put(f"{release}/sha256sum.txt", f"{served}  ./ollama-linux-amd64.tar.zst\n".encode())
    files, cache = preflight(tmp_path, upstream, "ollama", "cpu", ollama_base_url=upstream.url)
    refusal = files["refused.txt"]
    assert (
        f"Checksum mismatch for ollama-linux-amd64.tar.zst from {upstream.url}/{release}/ollama-linux-amd64.tar.zst:"
        in refusal
    )
    assert f"expected sha256 {OLLAMA_AMD64_SHA256}, got {served}." in refusal
    assert not [p for p in (cache / "ollama").rglob("*") if p.is_file()]


def test_ollama_release_is_checked_against_its_sha256sum_txt(tmp_path, upstream):
    version = "0.0.1-upstream-test"
    release = f"{OLLAMA_RELEASES}/v{version}"
    served = upstream.put(f"{release}/ollama-linux-amd64.tar.zst", b"an archive in the release layout\n")
    upstream.put(f"{release}/sha256sum.txt", f"{served}  ./ollama-linux-amd64.tar.zst\n".encode())
    files, cache = preflight(
        tmp_path, upstream, "ollama", "cpu", ollama_base_url=upstream.url, ollama_version=version
    )
    assert "passed.txt" in files, files.get("refused.txt")
    assert sha256((cache / "ollama" / f"v{version}" / "ollama-linux-amd64.tar.zst").read_bytes()) == served
    assert {f"GET /{release}/sha256sum.txt", f"GET /{release}/ollama-linux-amd64.tar.zst"} <= set(
        upstream.requested()
    )


def test_ollama_rocm_archive_is_checked_against_sha256sum_txt_beside_the_pins(tmp_path, upstream):
    # An AMD node unpacks the ROCm add-on too: not pinned, so the release's sha256sum.txt vouches for it.
    release = f"{OLLAMA_RELEASES}/v{OLLAMA_VERSION}"
    base = upstream.put(f"{release}/ollama-linux-amd64.tar.zst", b"base archive\n")
    rocm = upstream.put(f"{release}/ollama-linux-amd64-rocm.tar.zst", b"rocm add-on\n")
    upstream.put(f"{release}/sha256sum.txt", f"{rocm}  ./ollama-linux-amd64-rocm.tar.zst\n".encode())
    files, cache = preflight(
        tmp_path,
        upstream,
        "ollama",
        "rx7900xtx",
        ollama_base_url=upstream.url,
        ollama_checksums={OLLAMA_VERSION: {"ollama-linux-amd64.tar.zst": base}},
    )
    assert "passed.txt" in files, files.get("refused.txt")
    cached = cache / "ollama" / f"v{OLLAMA_VERSION}"
    assert sha256((cached / "ollama-linux-amd64-rocm.tar.zst").read_bytes()) == rocm
    assert sha256((cached / "ollama-linux-amd64.tar.zst").read_bytes()) == base


def test_ollama_archive_that_sha256sum_txt_does_not_match_is_refused(tmp_path, upstream):
    version = "0.0.2-tampered-test"
    release = f"{OLLAMA_RELEASES}/v{version}"
    upstream.put(f"{release}/ollama-linux-amd64.tar.zst", b"tampered\n")
    listed = sha256(b"what the release published\n")
    upstream.put(f"{release}/sha256sum.txt", f"{listed}  ./ollama-linux-amd64.tar.zst\n".encode())
    files, _ = preflight(
        tmp_path, upstream, "ollama", "cpu", ollama_base_url=upstream.url, ollama_version=version
    )
    refusal = files["refused.txt"]
    assert f"expected sha256 {listed}" in refusal
    assert f"check {upstream.url}/{release}/sha256sum.txt lists ollama-linux-amd64.tar.zst" in refusal


def test_ollama_release_without_sha256sum_txt_is_refused_clearly(tmp_path, upstream):
    version = "0.0.3-missing-test"
    upstream.put(f"{OLLAMA_RELEASES}/v{version}/ollama-linux-amd64.tar.zst", b"no sums beside me\n")
    files, _ = preflight(
        tmp_path, upstream, "ollama", "cpu", ollama_base_url=upstream.url, ollama_version=version
    )
    refusal = files["refused.txt"]
    assert f"Could not read {upstream.url}/{OLLAMA_RELEASES}/v{version}/sha256sum.txt (" in refusal
    assert "Nothing was changed." in refusal
    assert f"ollama_base_url ({upstream.url}) reaches upstream's layout" in refusal
    assert f"or pin ollama_checksums['{version}']" in refusal


def test_ollama_mirror_without_sha256sum_txt_is_refused_clearly(tmp_path, upstream):
    # The air-gapped path keeps its own message: the fix is in the mirror, not the base URL.
    version = "0.0.4-mirror-test"
    release = tmp_path / "mirror" / "ollama" / f"v{version}"
    release.mkdir(parents=True)
    (release / "ollama-linux-amd64.tar.zst").write_bytes(b"no sums beside me\n")
    files, _ = preflight(
        tmp_path,
        upstream,
        "ollama",
        "cpu",
        ollama_version=version,
        animaflow_artifact_mirror=str(tmp_path / "mirror"),
    )
    refusal = files["refused.txt"]
    assert f"Could not read {release}/sha256sum.txt (" in refusal
    assert f"put the release (archives and sha256sum.txt) in the mirror as {release}/" in refusal
