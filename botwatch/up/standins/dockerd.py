"""A private Docker daemon for tests and benches: its own roots and socket, no bridge, no iptables (loopback
only), and a busybox image made by `docker import` (no registry is needed or reached)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

IMAGE = "botwatch-test-busybox:1"
APPLETS = ("sh", "sleep", "echo", "cat", "httpd", "mkdir")


class DockerdError(RuntimeError):
    pass


class PrivateDockerd:
    def __init__(self, root: Path, binary: str | None = None, busybox: str | None = None):
        self.root = Path(root)
        self.binary = binary or shutil.which("dockerd")
        self.busybox = busybox or shutil.which("busybox") or "/bin/busybox"
        self.sock = self.root / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.image = IMAGE
        self.client = None
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "PrivateDockerd":
        if not self.binary:
            raise DockerdError("dockerd is not installed: `make test` installs Debian's docker.io")
        if not Path(self.busybox).exists():
            raise DockerdError("busybox is not installed: `make test` installs Debian's busybox-static")
        import docker
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "dockerd.log", "wb")
        self._process = subprocess.Popen(
            [self.binary, "--bridge=none", "--iptables=false", "--ip-masq=false", f"--data-root={self.root / 'data'}",
             f"--exec-root={self.root / 'exec'}", f"-H={self.host}", f"--pidfile={self.root / 'pid'}"],
            stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.sock.exists():
                    self.client = docker.DockerClient(base_url=self.host, timeout=30)
                    self.client.ping()
                    break
            except Exception:  # not listening yet
                pass
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise DockerdError(f"dockerd did not come up: see {self.root / 'dockerd.log'}")
            time.sleep(0.1)
        self._import_busybox()
        return self

    def _import_busybox(self) -> None:
        rootfs = self.root / "rootfs"
        (rootfs / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.busybox, rootfs / "bin" / "busybox")
        for applet in APPLETS:
            link = rootfs / "bin" / applet
            if not link.exists():
                link.symlink_to("busybox")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(rootfs, arcname=".")
        repository, tag = IMAGE.split(":")
        self.client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)
        self._process = None
        self._unmount_leftovers()

    def _unmount_leftovers(self) -> None:
        """dockerd leaves its own network namespace mounted under its exec root (exec/netns/default): without
        this, the folder can't be removed and the mount outlives the run."""
        try:
            mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        except OSError:
            return
        root = str(self.root.resolve())
        for point in sorted((m for m in mounts if m == root or m.startswith(root + "/")), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
