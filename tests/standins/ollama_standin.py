#!/usr/bin/env python3
"""Build a STAND-IN for Ollama's Linux archive, for tests only.

Why: the real ollama-linux-amd64.tar.zst cannot be downloaded here (GitHub and ollama.com are
unreachable) and there is no GPU. The roles' real path (fetch from the mirror, check the sha256
from sha256sum.txt, unpack with zstd into /opt/animaflow/ollama/<version>/, run `ollama serve`
under systemd, import a GGUF offline through a Modelfile) is exercised against this archive instead.

The archive has Ollama's layout and names:

    bin/ollama            a Python script implementing the parts of the CLI the roles use:
                          `ollama serve` (reads OLLAMA_HOST, OLLAMA_MODELS, OLLAMA_NUM_PARALLEL,
                          OLLAMA_CONTEXT_LENGTH, writes its key under $HOME/.ollama like Ollama),
                          `ollama create NAME -f Modelfile` (FROM /path/model.gguf: uploads the blob,
                          then POST /api/create), `ollama list`, `ollama --version`; `ollama pull` fails
                          (no registry here)
    lib/ollama/llama-server  the real llama.cpp server (from the llama.cpp role's controller build cache,
                          or built here from the mirror's llama.cpp source), which does the inference
    lib/ollama/STANDIN    says what this is

`ollama serve` answers GET / , /api/version, /api/tags, /api/ps, HEAD/POST /api/blobs/sha256:<d>,
POST /api/create, GET /v1/models itself and passes every other /v1/* request to llama-server,
started on a free loopback port with the most recently created model.

    python tests/standins/ollama_standin.py [--mirror DIR] [--version V] [--llama-server PATH]

writes DIR/ollama/v<V>/ollama-linux-amd64.tar.zst and DIR/ollama/v<V>/sha256sum.txt (the format
upstream publishes). Reproducible for a given llama-server binary. With --upstream, DIR is a copy of the
forge instead (ollama_base_url): DIR/ollama/ollama/releases/download/v<V>/, upstream's release layout.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
from llama_build import build_llama_server, known_versions

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MIRROR = Path(os.environ.get("ANIMAFLOW_MIRROR", ROOT / ".cache" / "mirror"))
DEFAULT_VERSION = "0.32.15-standin"
OWN_BUILD = ROOT / ".cache" / "standins" / "build"
LLAMA_SOURCE = "llamacpp/llama.cpp-b11312.tar.gz"
FIXED_MTIME = 1_767_225_600

OLLAMA_SCRIPT = r'''#!/usr/bin/env python3
"""STAND-IN for the ollama binary (tests/standins/ollama_standin.py): NOT Ollama."""
import hashlib, http.client, http.server, json, os, signal, socket, socketserver, subprocess, sys
import threading, time, urllib.error, urllib.request
from datetime import datetime, timezone
from pathlib import Path

VERSION = "@VERSION@"
HERE = Path(__file__).resolve().parent
LLAMA_SERVER = HERE.parent / "lib" / "ollama" / "llama-server"


def host_port():
    value = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434")
    value = value.split("://", 1)[-1]
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port or 11434)


def base_url():
    host, port = host_port()
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def store():
    return Path(os.environ.get("OLLAMA_MODELS", Path.home() / ".ollama" / "models"))


def tag(name):
    return name if ":" in name else name + ":latest"


def manifests():
    root = store() / "manifests" / "registry.ollama.ai" / "library"
    found = []
    for path in sorted(root.glob("*/*")):
        data = json.loads(path.read_text())
        found.append((f"{path.parent.name}:{path.name}", path.stat().st_mtime, data))
    return found


class Runner:
    """One llama-server with the most recently created model, on a free loopback port."""

    def __init__(self):
        self.proc = None
        self.model = None
        self.port = None
        self.lock = threading.Lock()

    def start(self, name, blob):
        with self.lock:
            self.stop()
            host = host_port()[0]
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
                sock.bind((host, 0))
                self.port = sock.getsockname()[1]
            parallel = int(os.environ.get("OLLAMA_NUM_PARALLEL") or 1)
            ctx = int(os.environ.get("OLLAMA_CONTEXT_LENGTH") or 4096)
            argv = [str(LLAMA_SERVER), "-m", str(blob), "--host", host, "--port", str(self.port),
                    "--alias", name, "-np", str(parallel), "-c", str(ctx * parallel)]
            self.proc = subprocess.Popen(argv, stdout=sys.stderr, stderr=sys.stderr)
            self.model = name
            for _ in range(600):
                try:
                    with urllib.request.urlopen(f"http://{host}:{self.port}/health", timeout=2) as r:
                        if r.status == 200:
                            return
                except (OSError, urllib.error.URLError):
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"llama-server exited with {self.proc.returncode}")
                time.sleep(0.2)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None


RUNNER = Runner()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("ollama-standin: " + fmt % args + "\n")

    def send(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else (json.dumps(body) if ctype == "application/json" else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_HEAD(self):
        if self.path.startswith("/api/blobs/"):
            digest = self.path.rsplit("/", 1)[1].replace(":", "-")
            self.send(200 if (store() / "blobs" / digest).exists() else 404, b"")
        else:
            self.send(200, b"")

    def do_GET(self):
        if self.path == "/":
            self.send(200, "Ollama is running", "text/plain")
        elif self.path == "/api/version":
            self.send(200, {"version": VERSION})
        elif self.path == "/api/tags":
            self.send(200, {"models": [self.describe(n, m, d) for n, m, d in manifests()]})
        elif self.path == "/api/ps":
            running = [self.describe(n, m, d) for n, m, d in manifests() if n == RUNNER.model]
            self.send(200, {"models": running})
        elif self.path == "/v1/models":
            data = [{"id": n, "object": "model", "created": int(m), "owned_by": "library"} for n, m, _ in manifests()]
            self.send(200, {"object": "list", "data": data})
        elif self.path.startswith("/v1/"):
            self.proxy(b"")
        else:
            self.send(404, "404 page not found", "text/plain")

    def do_POST(self):
        if self.path.startswith("/api/blobs/sha256:"):
            digest = self.path.rsplit(":", 1)[1]
            data = self.body()
            if hashlib.sha256(data).hexdigest() != digest:
                return self.send(400, {"error": "digest mismatch"})
            (store() / "blobs").mkdir(parents=True, exist_ok=True)
            (store() / "blobs" / f"sha256-{digest}").write_bytes(data)
            return self.send(201, b"")
        if self.path == "/api/create":
            req = json.loads(self.body() or b"{}")
            name, files = tag(req.get("model", "")), req.get("files") or {}
            if not files:
                return self.send(400, {"error": "neither 'from' nor 'files' was specified"})
            digest = next(iter(files.values()))
            blob = store() / "blobs" / digest.replace(":", "-")
            if not blob.exists():
                return self.send(400, {"error": f"blob {digest} not found"})
            base, _, version = name.partition(":")
            path = store() / "manifests" / "registry.ollama.ai" / "library" / base / version
            path.parent.mkdir(parents=True, exist_ok=True)
            layer = {"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": blob.stat().st_size}
            path.write_text(json.dumps({"schemaVersion": 2, "layers": [layer]}))
            try:
                RUNNER.start(name, blob)
            except RuntimeError as err:
                return self.send(500, {"error": str(err)})
            return self.send(200, '{"status":"success"}\n', "application/x-ndjson")
        if self.path.startswith("/v1/"):
            body = self.body()
            try:
                model = json.loads(body or b"{}").get("model")
            except ValueError:
                return self.send(400, {"error": {"message": "invalid JSON"}})
            if model and tag(model) not in [n for n, _, _ in manifests()]:
                msg = f'model "{model}" not found, try pulling it first'
                return self.send(404, {"error": {"message": msg, "type": "api_error"}})
            return self.proxy(body)
        self.send(404, "404 page not found", "text/plain")

    @staticmethod
    def describe(name, mtime, manifest):
        layer = manifest["layers"][0]
        modified = datetime.fromtimestamp(mtime, timezone.utc).isoformat()
        return {"name": name, "model": name, "modified_at": modified, "size": layer["size"],
                "digest": layer["digest"].split(":")[1], "details": {"format": "gguf"}}

    def proxy(self, body):
        if RUNNER.proc is None or RUNNER.proc.poll() is not None:
            return self.send(503, {"error": {"message": "no model loaded"}})
        conn = http.client.HTTPConnection(host_port()[0], RUNNER.port, timeout=600)
        headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        self.send_response(resp.status)
        for key in ("Content-Type",):
            if resp.getheader(key):
                self.send_header(key, resp.getheader(key))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while chunk := resp.read1(65536):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        conn.close()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve():
    home = Path.home() / ".ollama"
    home.mkdir(parents=True, exist_ok=True)  # Ollama writes its key pair here at start; so do we.
    key = home / "id_ed25519"
    if not key.exists():
        key.write_text("stand-in key placeholder\n")
        key.chmod(0o600)
    store().mkdir(parents=True, exist_ok=True)
    host, port = host_port()
    Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = Server((host, port), Handler)
    found = manifests()
    if found:
        name, _, data = max(found, key=lambda item: item[1])
        RUNNER.start(name, store() / "blobs" / data["layers"][0]["digest"].replace(":", "-"))

    def shutdown(*_):
        RUNNER.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    sys.stderr.write(f"ollama-standin {VERSION}: Listening on {host}:{port}\n")
    server.serve_forever()


def request(method, path, data=None, ctype="application/json"):
    req = urllib.request.Request(base_url() + path, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def create(name, modelfile):
    source = None
    for line in Path(modelfile).read_text().splitlines():
        if line.strip().upper().startswith("FROM "):
            source = Path(line.strip()[5:].strip())
    if source is None or not source.is_file():
        sys.exit(f"Error: no FROM with a local GGUF file in {modelfile}")
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    print("gathering model components")
    if request("HEAD", f"/api/blobs/sha256:{digest}")[0] != 200:
        code, body = request("POST", f"/api/blobs/sha256:{digest}", data, "application/octet-stream")
        if code != 201:
            sys.exit(f"Error: upload failed: {code} {body.decode(errors='replace')}")
    payload = json.dumps({"model": name, "files": {source.name: f"sha256:{digest}"}}).encode()
    code, body = request("POST", "/api/create", payload)
    if code != 200:
        sys.exit(f"Error: {body.decode(errors='replace')}")
    print("success")


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("Usage: ollama [serve|create|list|pull|--version]  (stand-in)")
        return 0
    cmd = argv[0]
    if cmd in ("-v", "--version"):
        try:
            code, body = request("GET", "/api/version")
            print(f"ollama version is {json.loads(body)['version']}")
        except (OSError, urllib.error.URLError):
            print("Warning: could not connect to a running Ollama instance")
            print(f"Warning: client version is {VERSION}")
        return 0
    if cmd == "serve":
        serve()
        return 0
    if cmd == "create" and len(argv) >= 4 and argv[2] == "-f":
        create(argv[1], argv[3])
        return 0
    if cmd in ("list", "ls"):
        code, body = request("GET", "/api/tags")
        print("NAME\tID\tSIZE\tMODIFIED")
        for model in json.loads(body)["models"]:
            print(f"{model['name']}\t{model['digest'][:12]}\t{model['size']}\t{model['modified_at']}")
        return 0
    if cmd == "pull":
        sys.stderr.write("Error: this is a stand-in for tests; it cannot reach the Ollama registry\n")
        return 1
    sys.stderr.write(f"Error: unknown command {cmd!r} (stand-in)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("ANIMAFLOW_CACHE_DIR") or Path.home() / ".cache" / "animaflow")


def needs_only_base_libs(binary: Path) -> bool:
    """True when the binary needs nothing beyond libc/libm/libstdc++/libgcc_s (the node image has those)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
    libs = [line.split()[0] for line in out.splitlines() if "=>" in line]
    return all(
        lib.split(".so")[0] in {"libc", "libm", "libstdc++", "libgcc_s", "libpthread", "libdl"}
        for lib in libs
    )


def find_llama_server(mirror: Path) -> Path:
    """The llama.cpp role's CPU build from the controller cache, else a build of the mirror's source."""
    cached = sorted(
        (
            path
            for version in known_versions()
            for path in glob.glob(
                str(cache_dir() / "llamacpp" / "builds" / f"{version}-cpu-*" / "llama-server")
            )
        ),
        key=os.path.getmtime,
    )
    for candidate in reversed(cached):
        if needs_only_base_libs(Path(candidate)):
            return Path(candidate)
    source = mirror / LLAMA_SOURCE
    if not source.exists():
        sys.exit(
            f"no llama-server: neither a CPU build in {cache_dir()}/llamacpp/builds nor {source} (run prepare-mirror.py)"
        )
    print(f"building llama-server from {source} (a few minutes)", file=sys.stderr)
    return build_llama_server(source, OWN_BUILD)


def add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, FIXED_MTIME
    info.uid = info.gid = 0
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
    tar.addfile(info)


def build(mirror: Path, version: str, llama_server: Path, upstream: bool = False) -> Path:
    out_dir = mirror / ("ollama/ollama/releases/download" if upstream else "ollama") / f"v{version}"
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / "ollama-linux-amd64.tar.zst"
    note = (
        f"STAND-IN for ollama-linux-amd64.tar.zst {version}, built by tests/standins/ollama_standin.py for\n"
        "tests where the real archive cannot be downloaded. bin/ollama is a Python script; inference is\n"
        f"llama.cpp's llama-server (sha256 {sha256(llama_server)}).\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "archive.tar"
        with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as tar:
            for name in ("bin", "lib", "lib/ollama"):
                add_dir(tar, name)
            add(tar, "bin/ollama", OLLAMA_SCRIPT.replace("@VERSION@", version).encode(), 0o755)
            add(tar, "lib/ollama/STANDIN", note.encode(), 0o644)
            add(tar, "lib/ollama/llama-server", llama_server.read_bytes(), 0o755)
        part = archive.with_suffix(".part")
        subprocess.run(["zstd", "-q", "-f", "-19", "-T0", str(tar_path), "-o", str(part)], check=True)
        part.replace(archive)
    # Upstream's format: "<sha256>  ./<file>" per published file.
    (out_dir / "sha256sum.txt").write_text(f"{sha256(archive)}  ./{archive.name}\n")
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument(
        "--llama-server", type=Path, help="llama-server binary to bundle (default: found or built)"
    )
    parser.add_argument(
        "--upstream",
        action="store_true",
        help="write in the forge's release layout (DIR/ollama/ollama/releases/download/v<V>/), not the mirror's",
    )
    args = parser.parse_args(argv)
    if shutil.which("zstd") is None:
        sys.exit("zstd is needed on the controller to write .tar.zst (apt-get install zstd)")
    mirror = args.mirror.resolve()
    llama_server = args.llama_server or find_llama_server(mirror)
    archive = build(mirror, args.version, llama_server, args.upstream)
    print(f"{archive} ({archive.stat().st_size} bytes, llama-server from {llama_server})")
    print((archive.parent / "sha256sum.txt").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
