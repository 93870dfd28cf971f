"""A tiny container image built here (no registry is reachable): busybox + bash.

`build(store, name)` imports a minimal root filesystem into a podman image
store with `podman import`; the local cloud's nodes use that store read-only
(provision: container_image_stores), so `image_id: docker:<name>` runs
without a pull. The image holds /etc/skyterra-image-marker, which exists
nowhere else.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

MARKER = "/etc/skyterra-image-marker"
MARKER_TEXT = "inside-the-skyterra-test-image"
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n' \
    'events_logger = "file"\nruntime = "runc"\n'


def available() -> str | None:
    """Why the image cannot be built here (None: it can)."""
    for tool in ("podman", "runc"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (.ci/install installs podman and runc)"
    if not Path("/bin/busybox").exists():
        return "busybox is not installed (.ci/install installs busybox-static)"
    if os.geteuid() != 0:
        return "the local cloud runs containers with rootful podman (needs root)"
    return None


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        for part in parts:
            if part.startswith("/"):
                found.append(part)
                break
    return found


def _rootfs_tar(path: Path) -> None:
    bash = shutil.which("bash") or "/bin/bash"
    with tarfile.open(path, "w") as tar:
        def add_file(source: str, target: str) -> None:
            tar.add(os.path.realpath(source), arcname=target.lstrip("/"), recursive=False)

        for directory in ("bin", "etc", "tmp", "root", "lib", "lib64", "usr", "proc", "sys",
                          "dev"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        add_file("/bin/busybox", "/bin/busybox")
        for applet in ("sh", "sleep", "cat", "echo", "kill", "ls", "env", "ps", "setsid",
                       "seq", "mkdir", "rm", "pwd", "id", "base64", "touch", "test"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        add_file(bash, "/bin/bash")
        for lib in _libraries(bash):
            add_file(lib, lib)
        data = MARKER_TEXT.encode() + b"\n"
        info = tarfile.TarInfo(MARKER.lstrip("/"))
        info.size, info.mode = len(data), 0o644
        import io

        tar.addfile(info, io.BytesIO(data))


def podman(store: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """podman on `store` (vfs), with a short run root and our containers.conf."""
    conf = store.parent / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    run = "/tmp/skyterra-t-" + hashlib.sha256(str(store).encode()).hexdigest()[:12]
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    return subprocess.run(["podman", "--root", str(store), "--runroot", run,
                           "--storage-driver", "vfs", *args], check=False,
                          capture_output=True, text=True, env=env, **kwargs)


def build(store: Path, name: str) -> None:
    """Import the test image as `name` into the podman store `store`."""
    store.mkdir(parents=True, exist_ok=True)
    tar = store.parent / "rootfs.tar"
    _rootfs_tar(tar)
    result = podman(store, "import", str(tar), name)
    assert result.returncode == 0, result.stderr
    tar.unlink()


def remove_store(store: Path) -> None:
    """The store's run root is outside it; the store itself is under the test's tmp."""
    run = "/tmp/skyterra-t-" + hashlib.sha256(str(store).encode()).hexdigest()[:12]
    shutil.rmtree(run, ignore_errors=True)
