"""The Bookworm root the apply test provisions (issue 30), and a station's first day in it.

``package_root`` builds, once per package list, a debootstrapped root with every Debian package
the role installs already in it (as an image builder's apt cache would hold them), under the
test cache; each test then works on an overlay of it, so nothing is extracted or downloaded
again and the playbook itself can run with the network cut (``unshare -n``).

``first_day`` runs what a station does on day one inside the applied root: its drives (ext4
images with the inventory's UUIDs, mounted where fstab says), a recording offloaded through
the station's config, the daemon's control side (as ``camdock run`` serves it) with the seal
password decrypted as systemd's ``LoadCredentialEncrypted=`` does; the provisioned custodian
seals the day (``camdock seal create``, logging in through the daemon), then the console runs
as its unit runs it (its own user, the provisioned certificate) and the custodian logs in to
it with their password; the supervisor is asked for a one-time code, a wrong one is refused,
the code made from the vault's TOTP secret lets them in, and they confirm the day's seal."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
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


def static_pieces(r: Path, seal_password: str, custodian_password: str) -> None:
    """Issue 30: what a station needs on its first day, each piece checked in the applied root
    as files and commands (``first_day`` then uses them live)."""
    text = (r / "etc/camdock/camdock.toml").read_text()
    for section in ("[retention]", "[seal]", "[selftest]", "[[staff]]"):
        assert section in text, section
    # The custodian logs in: the provisioned hash, read through the station's own config
    # loader, accepts the custodian's password (the console asks the daemon exactly this).
    probe = (
        "import sys\nfrom pathlib import Path\nfrom camdock.config import load\n"
        "from camdock import passwords\ncfg = load(Path('/etc/camdock/camdock.toml'))\n"
        "print(passwords.verify(sys.stdin.read(), cfg.password_hashes['C1']),"
        " passwords.verify('wrong', cfg.password_hashes['C1']), cfg.seal.credential)"
    )
    login = inside(r, "/opt/camdock/venv/bin/python", "-c", probe, stdin=custodian_password)
    assert login.stdout.split() == ["True", "False", "camdock-seal"], login.stdout + login.stderr
    # The seal password: encrypted with the root's host key, and what systemd hands the daemon
    # (LoadCredentialEncrypted) decrypts to the vault's password.
    cred = r / "etc/credstore.encrypted/camdock-seal"
    assert seal_password.encode() not in cred.read_bytes()
    opened = inside(
        r, "systemd-creds", "decrypt", "--name=camdock-seal", str(cred)[len(str(r)) :], "-"
    )
    assert opened.returncode == 0 and opened.stdout == seal_password, opened.stderr
    assert "LoadCredentialEncrypted=camdock-seal:/etc/credstore.encrypted/camdock-seal" in (
        (r / "etc/systemd/system/camdock.service").read_text()
    )
    # WeasyPrint's libraries and the CJK fonts; the README the unit's Documentation= names.
    for package in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "fonts-noto-cjk"):
        status = inside(r, "dpkg-query", "-W", "-f=${Status}", package)
        assert status.stdout == "install ok installed", (package, status.stdout, status.stderr)
    assert (r / "usr/share/doc/camdock/README.md").read_text().startswith("# camdock")
    # Offline and reproducible: the venv holds exactly the lock's versions (pip ran with
    # --no-index from the wheelhouse, every hash checked), lgpio among them.
    lock = (ROLE.parents[2] / "requirements" / "pi.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.MULTILINE))
    frozen = inside(r, "/opt/camdock/venv/bin/python", "-m", "pip", "list", "--format=freeze")
    got = dict(line.split("==", 1) for line in frozen.stdout.split() if "==" in line)
    norm = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in got.items()}  # PEP 503 names
    wrong = {n: (v, norm.get(n.lower())) for n, v in pins.items()
             if n != "brotlicffi" and norm.get(re.sub(r"[-_.]+", "-", n).lower()) != v}  # fmt: skip
    assert not wrong, wrong
    factory = inside(r, "/opt/camdock/venv/bin/python", "-c", "import gpiozero.pins.lgpio")
    assert factory.returncode == 0, factory.stderr


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


# As `camdock run` serves its control socket (station.py): the run directory shared with the
# console, the same peers (root, the daemon, the console's user) and the same slow operations.
SERVER = """\
import sys
from pathlib import Path
from camdock.adapters.control import Server
from camdock.config import load
from camdock.station import rundir
from camdock.station.control import SLOW_OPS, SOCKET, Control, peers
cfg = load(Path(sys.argv[1]))
rundir.prepare(cfg)  # the run directory shared with the console's user, as at start
uids, group = peers()
server = Server(cfg.run_dir / SOCKET, Control(cfg).handle, uids, group, SLOW_OPS)
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


@contextmanager
def _console(root: Path) -> Iterator[str]:
    """``camdock web`` in the root as its unit runs it (the console's own user, the
    provisioned certificate and key), on a free loopback port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["chroot", "--userspec=camdock-web:camdock-web", "--groups=camdock", str(root),
         f"{VENV}/camdock", "web", "--config", CONFIG, "--listen", f"127.0.0.1:{port}",
         "--cert", "/etc/camdock/web.crt", "--key", "/etc/camdock/web.key"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for _ in range(600):  # until it accepts connections (or has ended)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


class Browser:
    """One person's session with the console: cookies, the provisioned certificate trusted
    (self-signed for the station's id, so the name is not checked), redirects followed."""

    def __init__(self, base: str, cert: Path) -> None:
        tls = ssl.create_default_context(cafile=str(cert))
        tls.check_hostname = False
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(), urllib.request.HTTPSHandler(context=tls)
        )

    def go(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        """GET ``path``, or POST ``form`` to it: the final status and page."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.base + path, data, timeout=120) as answer:
                return int(answer.status), answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def login(self, staff: str, password: str, otp: str | None = None) -> tuple[int, str]:
        """The login form filled in and sent (with the one-time code when given)."""
        _, page = self.go("/login")
        form = {"csrf": _csrf(page), "staff": staff, "password": password}
        if otp is not None:
            form["otp"] = otp
        return self.go("/login", form)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def _fresh_code(secret: str) -> str:
    """A code for the current time step (the chroot's processes run on the machine's clock)."""
    totp = pyotp.TOTP(secret)
    if 30 - time.time() % 30 < 3:  # too near the step's end: the next step's code
        return totp.at(time.time() + 5)
    return totp.now()


def _in_the_console(root: Path, base: str, passwords: dict[str, str],
                    totp: dict[str, str]) -> None:  # fmt: skip
    """The custodian logs in and sees the day sealed; the supervisor is asked for a one-time
    code, a wrong one is refused, the vault's secret's code lets them in, and they confirm."""
    cert = root / "etc/camdock/web.crt"
    custodian = Browser(base, cert)
    status, page = custodian.login("C1", passwords["C1"])
    assert status == 200 and 'name="password"' not in page, (status, page[-2000:])  # in
    status, page = custodian.go("/seals")
    assert status == 200 and f'data-day="{DAY}"' in page, page[-2000:]  # sealed, unconfirmed
    supervisor = Browser(base, cert)
    status, page = supervisor.login("S1", passwords["S1"])  # the password alone
    assert status == 401 and "Enter the one-time code" in page, (status, page[-2000:])
    wrong = "000000" if _fresh_code(totp["S1"]) != "000000" else "111111"
    status, page = supervisor.login("S1", passwords["S1"], wrong)
    assert status == 401 and "Wrong staff id or password" in page, (status, page[-2000:])
    status, page = supervisor.login("S1", passwords["S1"], _fresh_code(totp["S1"]))
    assert status == 200 and 'name="password"' not in page, (status, page[-2000:])
    _, page = supervisor.go("/seals")
    confirm = f'action="/seals/{DAY}/confirm"'
    assert confirm in page, page[-2000:]
    status, page = supervisor.go(f"/seals/{DAY}/confirm", {"csrf": _csrf(page)})
    assert status == 200 and f'data-day="{DAY}"' in page and confirm not in page, page[-2000:]


def first_day(root: Path, work: Path, uuids: dict[str, str], passwords: dict[str, str],
              totp: dict[str, str], seal_password: str) -> dict[str, object]:  # fmt: skip
    """Day one in the applied ``root`` (module docstring): the daily seal (REG-4.2.5) made and
    confirmed by the provisioned staff, logged in by the daemon (REG-4.1.1); answers what
    ``camdock seal status`` says."""
    cam = root / "tmp" / "cam" / "DCIM" / "100MEDIA"
    cam.mkdir(parents=True)
    (cam / "20261128_091000_0001.MP4").write_bytes(hashlib.shake_256(b"day one").digest(1 << 16))
    with _drives(root, work, uuids):
        off = inside(root, f"{VENV}/camdock", "offload", "/tmp/cam", "--config", CONFIG,
                     "--camera", "CAM0001", "--clear", "--json")  # fmt: skip
        assert off.returncode == 0, off.stdout + off.stderr
        c1 = _secret_file(root, "c1.password", passwords["C1"])
        with _control_side(root):
            sealed = inside(root, f"{VENV}/camdock", "seal", "create", DAY, "--config", CONFIG,
                            "--by", "C1", "--password-file", c1)  # fmt: skip
            assert sealed.returncode == 0, sealed.stdout + sealed.stderr
            with _console(root) as base:
                _in_the_console(root, base, passwords, totp)
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
