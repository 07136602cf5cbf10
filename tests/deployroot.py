"""The Bookworm root the apply test provisions (issue 30), and a station's first day in it.

``package_root`` builds, once per package list, a debootstrapped root with every Debian package
the role installs already in it (as an image builder's apt cache would hold them), under the
test cache; each test then works on an overlay of it, so nothing is extracted or downloaded
again and the playbook itself can run with the network cut (``unshare -n``).

``first_day`` runs what a station does on day one inside the applied root: its drives (ext4
images with the inventory's UUIDs, mounted where fstab says), a recording offloaded through
the station's config, the daemon's control side started with the seal credential decrypted as
systemd's ``LoadCredentialEncrypted=`` does, then the provisioned custodian seals the day and
the provisioned supervisor confirms it, each logging in through the daemon (password, and the
one-time code from the vault's TOTP secret where the role needs one)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pyotp
import yaml

ROLE = Path(__file__).resolve().parent.parent / "ansible" / "roles" / "camdock"
VENV = "/opt/camdock/venv/bin"
CONFIG = "/etc/camdock/camdock.toml"
DAY = "2026-11-28"  # the recording below is filed under this duty day


def packages() -> list[str]:
    """The Debian packages the role installs (its defaults), and python3-apt (which the apt
    module installs for itself): what the cached root holds."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    return sorted({*defaults["camdock_packages"], "python3-apt"})


def _sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload,no-any-return]


def package_root(cache: Path, tarball: Path) -> Path:
    """The minbase root from ``tarball`` with ``packages()`` installed, cached under ``cache``
    keyed by the package list (and the tarball): built once, with the network."""
    wanted = packages()
    key = hashlib.sha256(json.dumps([wanted, tarball.stat().st_size]).encode()).hexdigest()[:16]
    done = cache / f"bookworm-packages-{key}"
    if done.is_dir():
        return done
    build = cache / f"bookworm-packages-{key}.build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(build, filter="fully_trusted")  # noqa: S202 - our own debootstrap
    shutil.copy("/etc/resolv.conf", build / "etc/resolv.conf")
    local_cas = Path("/usr/local/share/ca-certificates")  # a TLS proxy's CAs, as in the fixture
    if local_cas.is_dir():
        shutil.copytree(local_cas, build / "usr/local/share/ca-certificates", dirs_exist_ok=True)
    (build / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (build / "usr/sbin/policy-rc.d").chmod(0o755)
    subprocess.run(["mount", "-t", "proc", "proc", str(build / "proc")], check=True)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", *wanted],
                     ["apt-get", "clean"]):  # fmt: skip
            res = _sh(["chroot", str(build), *argv], env=env)
            if res.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}: {res.stderr[-500:]}")
    finally:
        subprocess.run(["umount", "-l", str(build / "proc")], check=False)
    build.rename(done)
    return done


@contextmanager
def overlay(lower: Path, where: Path) -> Iterator[Path]:
    """A writable root over the cached ``lower`` (which stays as it is), with /proc and /dev."""
    for name in ("upper", "work", "root"):
        (where / name).mkdir(parents=True)
    root = where / "root"
    opts = f"lowerdir={lower},upperdir={where / 'upper'},workdir={where / 'work'}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(root)], check=True)
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
        # The image's apt lists count as fresh: the role's apt task then installs from what
        # the root holds and asks no mirror (the playbook runs with the network cut).
        os.utime(root / "var/lib/apt/lists")
        yield root
    finally:
        for mounted in ("dev", "proc", ""):
            subprocess.run(["umount", "-l", str(root / mounted)], check=False)


def inside(root: Path, *argv: str, stdin: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``argv`` run in ``root`` (chroot)."""
    pre = ["env", *(f"{k}={v}" for k, v in (env or {}).items())] if env else []
    return _sh(["chroot", str(root), *pre, *argv], input=stdin)


def _secret_file(root: Path, name: str, text: str) -> str:
    path = root / "root" / name
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)
    return f"/root/{name}"


@contextmanager
def _drives(root: Path, work: Path, uuids: dict[str, str]) -> Iterator[None]:
    """Each drive an ext4 image with its inventory UUID, mounted at its fstab mount point."""
    with ExitStack() as stack:
        for name, uuid in uuids.items():
            image = work / f"{name}.img"
            with image.open("wb") as f:
                f.truncate(16 << 20)
            made = _sh(["mkfs.ext4", "-q", "-F", "-U", uuid, str(image)])
            assert made.returncode == 0, made.stderr
            point = root / "srv" / "camdock" / name
            subprocess.run(["mount", "-o", "loop", str(image), str(point)], check=True)
            stack.callback(subprocess.run, ["umount", "-l", str(point)], check=False)
        yield


SERVER = """\
import os, sys
from camdock.adapters.control import Server
from camdock.config import load
from camdock.station.control import SOCKET, Control
cfg = load(__import__('pathlib').Path(sys.argv[1]))
cfg.run_dir.mkdir(parents=True, exist_ok=True)
server = Server(cfg.run_dir / SOCKET, Control(cfg).handle, frozenset({0}))
server.start()
print('ready', flush=True)
sys.stdin.read()
server.close()
"""


@contextmanager
def _control_side(root: Path) -> Iterator[None]:
    """The daemon's control side for the provisioned config, in the root, with the seal
    password where systemd puts a ``LoadCredentialEncrypted=`` credential for the unit."""
    creds = "/run/credentials/camdock.service"
    (root / creds.lstrip("/")).mkdir(parents=True, mode=0o700)
    opened = inside(root, "systemd-creds", "decrypt", "--name=camdock-seal",
                    "/etc/credstore.encrypted/camdock-seal", f"{creds}/camdock-seal")  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    proc = subprocess.Popen(
        ["chroot", str(root), "env", f"CREDENTIALS_DIRECTORY={creds}", f"{VENV}/python", "-c",
         SERVER, CONFIG],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", proc.stderr
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _fresh_code(secret: str) -> str:
    """A code for the current time step (the chroot's processes run on the machine's clock)."""
    totp = pyotp.TOTP(secret)
    if 30 - time.time() % 30 < 3:  # too near the step's end: the next step's code
        return totp.at(time.time() + 5)
    return totp.now()


def first_day(root: Path, work: Path, uuids: dict[str, str], passwords: dict[str, str],
              totp: dict[str, str], seal_password: str) -> dict[str, object]:  # fmt: skip
    """Day one in the applied ``root`` (module docstring); answers what `seal status` says."""
    cam = root / "tmp" / "cam" / "DCIM" / "100MEDIA"
    cam.mkdir(parents=True)
    (cam / "20261128_091000_0001.MP4").write_bytes(hashlib.shake_256(b"day one").digest(1 << 16))
    with _drives(root, work, uuids):
        off = inside(root, f"{VENV}/camdock", "offload", "/tmp/cam", "--config", CONFIG,
                     "--camera", "CAM0001", "--clear", "--json")  # fmt: skip
        assert off.returncode == 0, off.stdout + off.stderr
        c1 = _secret_file(root, "c1.password", passwords["C1"])
        s1 = _secret_file(root, "s1.password", passwords["S1"])
        with _control_side(root):
            sealed = inside(root, f"{VENV}/camdock", "seal", "create", DAY, "--config", CONFIG,
                            "--by", "C1", "--password-file", c1)  # fmt: skip
            assert sealed.returncode == 0, sealed.stdout + sealed.stderr
            wrong = _secret_file(root, "s1.wrong", "000000" if _fresh_code(totp["S1"]) !=
                                 "000000" else "111111")  # fmt: skip
            confirm = (f"{VENV}/camdock", "seal", "confirm", DAY, "--config", CONFIG, "--by",
                       "S1", "--password-file", s1, "--otp-file")  # fmt: skip
            refused = inside(root, *confirm, wrong)
            assert refused.returncode != 0, refused.stdout  # a supervisor needs the right code
            otp = _secret_file(root, "s1.otp", _fresh_code(totp["S1"]))
            confirmed = inside(root, *confirm, otp)
            assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
        status = inside(root, f"{VENV}/camdock", "seal", "status", "--config", CONFIG, "--json")
        assert status.returncode == 0, status.stderr
        # The archive on each drive opens with the vault's password (7-Zip, in the root).
        for name in uuids:
            archives = sorted((root / "srv" / "camdock" / name).rglob("20261128-*.7z"))
            assert archives, name
            rel = "/" + str(archives[-1].relative_to(root))
            tested = inside(root, "7z", "t", f"-p{seal_password}", rel)
            assert tested.returncode == 0, tested.stdout[-500:]
        doc: dict[str, object] = json.loads(status.stdout)
        return doc
