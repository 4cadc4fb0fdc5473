"""The images the compose tests run, made without a registry and cached under build/images/ so a second run
is quick:

- a Debian bookworm base from debootstrap (Debian's package mirror, the one apt is configured with), with this
  machine's CA bundle (pip and apt reach their registries through it): stands in for `python:…-slim`;
- botwatch's image from the repository's own Dockerfile on that base (`--build-arg BASE=`), kept as a
  `docker save` tarball named by the digest of everything the build reads;
- Prometheus and Alertmanager from Debian's packages on that base, tagged as docker-compose.yml names
  the official images.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import ROOT

CACHE = Path(os.environ.get("BOTWATCH_IMAGE_CACHE", ROOT / "build" / "images"))
BASE = "botwatch-test-debian:bookworm"
BOTWATCH = "botwatch:0.1.0"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# what the Dockerfile copies: its digest names the cached image
BUILD_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "runbook.md", "botwatch", "prometheus",
                "alertmanager")
# tag: (Debian's binary, where the official image has it, its data folder, its default arguments, and the
# files Debian's build reads from /usr/share: Alertmanager's default notification templates)
STANDINS = {"prom/prometheus:v2.42.0": ("/usr/bin/prometheus", "/bin/prometheus", "/prometheus",
                                        ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
                                        None),
            "prom/alertmanager:v0.25.0": ("/usr/bin/prometheus-alertmanager", "/bin/alertmanager", "/alertmanager",
                                          ["--config.file=/etc/alertmanager/alertmanager.yml",
                                           "--storage.path=/alertmanager"], "/usr/share/prometheus/alertmanager")}


def docker(host: str, *args: str, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], env={**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"},
                            capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}: {result.stderr[-3000:]}")
    return result


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 sources or sources.list)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        text = path.read_text() if path.exists() else ""
        found = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+bookworm\b", text, re.M)
        if found:
            return found.group(1)
    raise RuntimeError("no Debian mirror in apt's sources: debootstrap needs one")


def base_image(host: str) -> None:
    """The Debian base, imported from the cached root filesystem (made with debootstrap the first time)."""
    rootfs = CACHE / "debian-bookworm-rootfs.tar.gz"
    if not rootfs.exists():
        if not shutil.which("debootstrap"):
            raise RuntimeError("debootstrap is not installed: `make deps` installs it")
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as folder:
            target = Path(folder) / "rootfs"
            subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                            "bookworm", str(target), debian_mirror()], check=True, capture_output=True, timeout=900)
            shutil.copy(CA_BUNDLE, target / "etc" / "ssl" / "certs" / "ca-certificates.crt")
            partial = rootfs.with_suffix(".partial")
            subprocess.run(f"tar -C {target} -c . | gzip -1 > {partial}", shell=True, check=True, timeout=600)
            partial.rename(rootfs)
    docker(host, "import", "--change", f"ENV PIP_CERT={CA_BUNDLE}", "--change",
           "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", str(rootfs), BASE)


def build_digest() -> str:
    digest = hashlib.sha256()
    for name in BUILD_INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                     and "__pycache__" not in p.parts)
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def botwatch_image(host: str) -> dict:
    """botwatch:0.1.0 from the repository's Dockerfile on the Debian base: loaded from the cache when the
    build's inputs are unchanged, built (and kept) otherwise. What it took, for the test's report."""
    kept = CACHE / f"botwatch-{build_digest()}.tar"
    if kept.exists():
        docker(host, "load", "-i", str(kept))
        return {"botwatch_image": "cached", "file": kept.name}
    docker(host, "build", "--network", "host", "--build-arg", f"BASE={BASE}", "-t", BOTWATCH, str(ROOT),
           timeout=1800)
    for old in CACHE.glob("botwatch-*.tar"):
        old.unlink()
    partial = kept.with_suffix(".partial")
    docker(host, "save", "-o", str(partial), BOTWATCH)
    partial.rename(kept)
    return {"botwatch_image": "built", "file": kept.name}


def standin_images(host: str) -> None:
    """Prometheus and Alertmanager from this machine's Debian packages, under the official images' names, with
    their entrypoints and data folders (owned by nobody, as there)."""
    for tag, (binary, inside, data, default_args, shared) in STANDINS.items():
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(binary, Path(folder) / "binary")
            if shared:
                shutil.copytree(shared, Path(folder) / "shared")
            args = ", ".join(f'"{a}"' for a in default_args)
            (Path(folder) / "Dockerfile").write_text(
                f"FROM {BASE}\nCOPY binary {inside}\n" + (f"COPY shared {shared}\n" if shared else "") +
                f"RUN mkdir -p {data} /etc/{Path(inside).name} && chown 65534:65534 {data}\n"
                f"USER 65534\nWORKDIR {data}\nENTRYPOINT [\"{inside}\"]\nCMD [{args}]\n")
            docker(host, "build", "-t", tag, folder, timeout=600)


def image_size(host: str, tag: str) -> int:
    return int(docker(host, "image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())
