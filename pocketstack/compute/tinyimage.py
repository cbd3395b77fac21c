"""`pocketstack-tiny`: a CirrOS-like test image built from Debian packages.

What is in it (docs/compute-qemu.md has the why):

- Debian's cloud kernel (`linux-image-cloud-amd64`, fetched with `apt-get download`,
  unpacked with `dpkg-deb -x`) and the few modules a QEMU guest needs (virtio PCI,
  block, net and rng, ISO 9660 for the config drive, the ACPI button and evdev so the
  power button shuts the guest down).
- An initramfs that *is* the root filesystem: busybox-static, dropbear (SSH) with the
  shared libraries it links, and an init (busybox init + `/etc/init.d/rcS`) that brings
  up eth0 with `udhcpc`, reads `meta_data.json` from a config drive labelled
  `config-2` or else from `http://169.254.169.254/openstack/latest/`, sets the
  hostname, installs the public keys for user `tiny` (no password login for anyone),
  starts dropbear and prints a recognisable banner on the serial console.
- A disk image (MBR, one FAT16 partition at 1 MiB holding the kernel, the initramfs and
  SYSLINUX), bootable by SeaBIOS like any cloud image. SYSLINUX is installed with
  `syslinux --install` on the partition file through mtools and the FAT is made with
  `mkfs.vfat`, so building needs neither root, loop devices nor mounts.

The result is cached under `~/.cache/pocketstack/tiny/<key>/` (or
`$POCKETSTACK_CACHE_DIR/tiny/...`), the key being a hash of the package versions and of
this builder's recipe, so a rebuild happens only when Debian ships new packages.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger("pocketstack.compute.tinyimage")

IMAGE_NAME = "pocketstack-tiny"
BANNER = "pocketstack-tiny ready"  # the serial console line tests and users wait for
LOGIN_USER = "tiny"
RECIPE_VERSION = "7"  # bump when the recipe below changes

KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
PACKAGES = ("busybox-static", "dropbear-bin")
# modules the guest loads, in addition to whatever they depend on
MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_rng", "isofs", "button", "evdev")
DISK_MB = 48
PART_START = 2048  # sectors: the partition starts at 1 MiB

MBR_CANDIDATES = ("/usr/lib/syslinux/mbr/mbr.bin", "/usr/lib/SYSLINUX/mbr.bin", "/usr/share/syslinux/mbr.bin")
BUILD_TOOLS = {"apt-get": "apt", "dpkg-deb": "dpkg", "mkfs.vfat": "dosfstools", "mcopy": "mtools",
               "syslinux": "syslinux", "qemu-img": "qemu-utils"}


class BuildError(Exception):
    """The image cannot be built here (a missing tool or package); the message says what."""


def cache_root() -> Path:
    base = os.environ.get("POCKETSTACK_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "pocketstack"


def _run(cmd: list[str], **kw) -> str:
    try:
        res = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} is not installed (tools/install-system-deps.sh installs it)") from None
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{' '.join(cmd)} failed: {(exc.stderr or exc.stdout).strip()[-400:]}") from None
    return res.stdout


def missing_tools() -> list[str]:
    missing = [f"{cmd} ({pkg})" for cmd, pkg in BUILD_TOOLS.items() if shutil.which(cmd) is None]
    if _mbr_path() is None:
        missing.append("mbr.bin (syslinux-common)")
    return missing


def _mbr_path() -> Path | None:
    for c in MBR_CANDIDATES:
        if Path(c).is_file():
            return Path(c)
    return None


# ---------------------------------------------------------------------------- packages
def _candidate_version(pkg: str) -> str:
    out = _run(["apt-cache", "policy", pkg])
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        raise BuildError(f"apt knows no package {pkg} (run apt-get update)")
    return m.group(1)


def _kernel_package() -> tuple[str, str]:
    """The versioned kernel package the cloud meta-package points at, and its version."""
    out = _run(["apt-cache", "depends", KERNEL_META_PACKAGE])
    m = re.search(r"Depends:\s*(linux-image-\S+)", out)
    if not m:
        raise BuildError(f"cannot resolve {KERNEL_META_PACKAGE} (run apt-get update)")
    pkg = m.group(1)
    return pkg, _candidate_version(pkg)


def package_versions() -> dict[str, str]:
    kpkg, kver = _kernel_package()
    versions = {kpkg: kver}
    for pkg in PACKAGES:
        versions[pkg] = _candidate_version(pkg)
    return versions


def cache_key(versions: dict[str, str]) -> str:
    text = RECIPE_VERSION + "\n" + "\n".join(f"{k}={v}" for k, v in sorted(versions.items()))
    text += "\n" + _INIT_SCRIPT + _RCS_SCRIPT + _UDHCPC_SCRIPT
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _download(pkgs: list[str], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", "-q", *pkgs], cwd=dest)


def _extract_all(debs: Path, root: Path) -> None:
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)])


# ---------------------------------------------------------------------------- initramfs
class Cpio:
    """A `newc` cpio archive written in Python, so ownership (root) and device nodes need no root."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1
        self.names: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               uid: int = 0, gid: int = 0) -> None:
        name = name.lstrip("/")
        if name in self.names:
            return
        self.names.add(name)
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, uid, gid, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + nb)
        self.buf.write(b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * ((4 - len(data) % 4) % 4))

    def dir(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts)):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)
        self._entry(name, stat.S_IFDIR | mode, uid=uid, gid=gid)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.dir(os.path.dirname(name.strip("/"))) if "/" in name.strip("/") else None
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self.dir(os.path.dirname(name.strip("/"))) if "/" in name.strip("/") else None
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def _modinfo_depends(ko: Path) -> list[str]:
    data = ko.read_bytes()
    m = re.search(rb"\0depends=([^\0]*)\0", data)
    if not m or not m.group(1):
        return []
    return [d.decode() for d in m.group(1).split(b",") if d]


def _module_order(moddir: Path, wanted: tuple[str, ...]) -> list[Path]:
    """The .ko files for `wanted` and their dependencies, dependencies first."""
    index: dict[str, Path] = {}
    for ko in moddir.rglob("*.ko"):
        index[ko.stem.replace("-", "_")] = ko
    builtin = set()
    bfile = moddir / "modules.builtin"
    if bfile.exists():
        builtin = {Path(x).stem.replace("-", "_") for x in bfile.read_text().split()}
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            if name in builtin:
                return
            raise BuildError(f"kernel module {name} not found in the kernel package")
        for dep in _modinfo_depends(index[name]):
            visit(dep)
        order.append(index[name])

    for w in wanted:
        visit(w)
    return order


def _libs_of(binary: Path) -> list[Path]:
    """Shared libraries a dynamically linked binary needs (ldd against the host's Debian libs)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        if "not found" in line:
            raise BuildError(f"{binary.name} needs {line.split()[0]}, missing on this host "
                             "(install dropbear-bin: tools/install-system-deps.sh)")
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:
            libs.append(Path(m.group(1)))
    return libs


_INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec /bin/busybox init
"""

_INITTAB = """::sysinit:/etc/init.d/rcS
ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
"""

_RCS_SCRIPT = r"""#!/bin/sh
# pocketstack-tiny boot: modules, network (DHCP), metadata (config drive or 169.254.169.254),
# hostname, SSH keys for user tiny, dropbear, banner.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
say() { echo "tiny-init: $*" > /dev/console; }
mkdir -p /dev/pts /tmp /run /var/log /etc/dropbear /mnt/config
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
for m in $(cat /lib/modules/load-order); do insmod "/lib/modules/$m" 2>/dev/null; done
mdev -s 2>/dev/null
ip link set lo up
hostname pocketstack-tiny

# network: DHCP on eth0 (no lease is fine: config drive only)
IP=""
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  if udhcpc -i eth0 -t 4 -T 2 -A 2 -n -q -s /etc/udhcpc.script > /tmp/udhcpc.log 2>&1; then
    IP=$(ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -n1)
    say "eth0 has address $IP"
  else
    say "eth0: no DHCP lease"
  fi
fi

# metadata: config drive first, then the metadata service
META=""
DEV=$(findfs LABEL=config-2 2>/dev/null)
if [ -n "$DEV" ] && mount -t iso9660 -o ro "$DEV" /mnt/config 2>/dev/null; then
  if [ -f /mnt/config/openstack/latest/meta_data.json ]; then
    cp /mnt/config/openstack/latest/meta_data.json /run/meta_data.json
    META=config-drive
  fi
  umount /mnt/config
fi
if [ -z "$META" ] && [ -n "$IP" ]; then
  for i in 1 2 3; do
    # (busybox 1.35's `wget -T` always segfaults: bound it with `timeout` instead, and keep the
    # shell's message off the console)
    if (timeout 10 wget -q -O /run/meta_data.json http://169.254.169.254/openstack/latest/meta_data.json) 2>/dev/null; then
      META=metadata-service; break
    fi
    sleep 1
  done
fi
KEYS=0
if [ -n "$META" ]; then
  say "metadata from $META"
  H=$(sed -n 's/.*"hostname": *"\([^"]*\)".*/\1/p' /run/meta_data.json)
  [ -n "$H" ] && hostname "$H" && echo "$H" > /etc/hostname
  sed -n 's/.*"public_keys": *{\([^}]*\)}.*/\1/p' /run/meta_data.json \
    | awk -F'"' '{for (i = 4; i <= NF; i += 4) print $i}' | sed 's/\\n//g' \
    > /home/tiny/.ssh/authorized_keys
  KEYS=$(grep -c . /home/tiny/.ssh/authorized_keys)
  chown -R 1000:1000 /home/tiny; chmod 700 /home/tiny/.ssh; chmod 600 /home/tiny/.ssh/authorized_keys
else
  say "no metadata (no config drive, no metadata service)"
fi

# SSH: dropbear, public keys only
if [ -x /usr/sbin/dropbear ]; then
  dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key > /dev/null 2>&1
  dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key 2>/dev/null | grep -i fingerprint \
    | sed 's/^/tiny-init: ssh host key /' > /dev/console
  dropbear -s -g -p 22 -r /etc/dropbear/dropbear_ed25519_host_key
fi
acpid -c /etc/acpi 2>/dev/null

echo "=== $(cat /etc/pocketstack-tiny-banner) hostname=$(hostname) ip=${IP:-none} keys=$KEYS metadata=${META:-none} ===" > /dev/console
"""

_RCK_SCRIPT = r"""#!/bin/sh
echo "tiny-init: shutting down" > /dev/console
killall dropbear 2>/dev/null
sync
"""

# busybox has no lsblk; Tempest's volume tests count disks with `lsblk -lb --nodeps`
# (TYPE column aligned with its header, sizes in bytes): whole disks from /sys/block
_LSBLK_SCRIPT = r"""#!/bin/sh
printf '%-6s %7s %2s %14s %2s %-4s %s\n' NAME MAJ:MIN RM SIZE RO TYPE MOUNTPOINT
for d in /sys/block/*; do
  n=${d##*/}
  case $n in loop*|ram*) continue ;; esac
  printf '%-6s %7s %2s %14s %2s %-4s\n' "$n" "$(cat $d/dev)" "$(cat $d/removable)" \
    "$(( $(cat $d/size) * 512 ))" "$(cat $d/ro)" disk
done
"""

_UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
"""

_ACPI_POWER = "#!/bin/sh\npoweroff\n"


def build_initramfs(root: Path, kver: str) -> bytes:
    """The initramfs (gzip'd newc cpio) from the unpacked packages under `root`."""
    c = Cpio()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run", "mnt",
              "root", "var/log", "lib/modules", "lib64", "etc/dropbear", "etc/init.d"):
        c.dir(d)
    c.dir("tmp", 0o1777)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.chardev("dev/ttyS0", 4, 64)
    busybox = root / "bin" / "busybox"
    if not busybox.exists():
        raise BuildError("busybox-static did not unpack a /bin/busybox")
    # setuid root, as busybox is built for: applets that need root (ping) keep it, every other
    # (sh, ...) drops to the caller, so `tiny` can ping as CirrOS's user can
    c.file("bin/busybox", busybox.read_bytes(), 0o4755)
    applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet.endswith("/busybox"):
            continue
        c.symlink(applet, "/bin/busybox")
    c.file("init", _INIT_SCRIPT.encode(), 0o755)
    c.file("etc/inittab", _INITTAB.encode())
    c.file("etc/init.d/rcS", _RCS_SCRIPT.encode(), 0o755)
    c.file("etc/init.d/rcK", _RCK_SCRIPT.encode(), 0o755)
    c.file("etc/udhcpc.script", _UDHCPC_SCRIPT.encode(), 0o755)
    c.file("usr/bin/lsblk", _LSBLK_SCRIPT.encode(), 0o755)
    c.file("etc/acpi/PWRF/00000080", _ACPI_POWER.encode(), 0o755)
    c.file("etc/acpi/power", _ACPI_POWER.encode(), 0o755)
    c.file("etc/pocketstack-tiny-banner", BANNER.encode() + b"\n")
    c.file("etc/issue", b"\npocketstack-tiny (login: tiny, SSH keys only) \\n \\l\n\n")
    c.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\ntiny:x:1000:1000:tiny:/home/tiny:/bin/sh\n")
    c.file("etc/group", b"root:x:0:\ntiny:x:1000:\n")
    c.file("etc/shadow", b"root:*:19000:0:99999:7:::\ntiny:*:19000:0:99999:7:::\n", 0o600)
    c.file("etc/shells", b"/bin/sh\n")
    c.file("etc/hostname", b"pocketstack-tiny\n")
    c.file("etc/resolv.conf", b"")
    c.dir("home/tiny", 0o755, uid=1000, gid=1000)
    c.dir("home/tiny/.ssh", 0o700, uid=1000, gid=1000)
    # dropbear and the libraries it links (same Debian release as the build host)
    dropbear = root / "usr" / "sbin" / "dropbear"
    if dropbear.exists():
        c.file("usr/sbin/dropbear", dropbear.read_bytes(), 0o755)
        for tool in ("dropbearkey",):
            p = root / "usr" / "bin" / tool
            if p.exists():
                c.file(f"usr/bin/{tool}", p.read_bytes(), 0o755)
        libs: set[Path] = set()
        for binary in (dropbear, root / "usr" / "bin" / "dropbearkey"):
            if binary.exists():
                libs.update(_libs_of(binary))
        for lib in sorted(libs):
            real = lib.resolve()
            c.file(str(lib).lstrip("/"), real.read_bytes(), 0o755)
    # kernel modules
    moddir = root / "lib" / "modules" / kver
    order = _module_order(moddir, MODULES)
    names = []
    for ko in order:
        c.file(f"lib/modules/{ko.name}", ko.read_bytes())
        names.append(ko.name)
    c.file("lib/modules/load-order", ("\n".join(names) + "\n").encode())
    return gzip.compress(c.finish(), compresslevel=6, mtime=0)


# ---------------------------------------------------------------------------- the disk
_SYSLINUX_CFG = """SERIAL 0 115200
DEFAULT tiny
PROMPT 0
TIMEOUT 1
LABEL tiny
  LINUX /vmlinuz
  INITRD /initrd.gz
  APPEND console=tty0 console=ttyS0,115200n8 panic=5 net.ifnames=0
"""


def build_disk(kernel: Path, initrd: bytes, dest: Path, work: Path) -> None:
    """An MBR disk with one bootable FAT16 partition holding SYSLINUX, the kernel and initramfs."""
    total_sectors = DISK_MB * 2048
    part_sectors = total_sectors - PART_START
    part = work / "part.img"
    _run(["mkfs.vfat", "-F", "16", "-n", "TINYBOOT", "-h", str(PART_START), "-C", str(part),
          str(part_sectors // 2)])
    (work / "initrd.gz").write_bytes(initrd)
    (work / "syslinux.cfg").write_text(_SYSLINUX_CFG)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for src, name in ((kernel, "vmlinuz"), (work / "initrd.gz", "initrd.gz"), (work / "syslinux.cfg", "syslinux.cfg")):
        _run(["mcopy", "-i", str(part), str(src), f"::{name}"], env=env)
    _run(["syslinux", "--install", str(part)], env=env)
    disk = work / "disk.raw"
    mbr = bytearray(_mbr_path().read_bytes()[:440].ljust(440, b"\0"))
    mbr += b"\0" * 6  # disk signature + reserved
    entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x0E, b"\xfe\xff\xff", PART_START, part_sectors)
    mbr += entry + b"\0" * 48 + b"\x55\xaa"
    with open(disk, "wb") as f:
        f.write(bytes(mbr))
        f.seek(PART_START * 512)
        with open(part, "rb") as p:
            shutil.copyfileobj(p, f)
        f.truncate(total_sectors * 512)
    os.replace(disk, dest)


def build(force: bool = False) -> Path:
    """Build (or find cached) `pocketstack-tiny`; returns the path of its qcow2 image."""
    missing = missing_tools()
    if missing:
        raise BuildError("cannot build pocketstack-tiny, missing: " + ", ".join(missing))
    versions = package_versions()
    key = cache_key(versions)
    out_dir = cache_root() / "tiny" / key
    qcow2 = out_dir / f"{IMAGE_NAME}.qcow2"
    if qcow2.exists() and not force:
        return qcow2
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("building %s (%s)", IMAGE_NAME, ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    with tempfile.TemporaryDirectory(prefix="tiny-build-", dir=out_dir) as tmp:
        work = Path(tmp)
        debs = work / "debs"
        _download([f"{p}={v}" for p, v in versions.items()], debs)
        root = work / "root"
        _extract_all(debs, root)
        kpkg = next(p for p in versions if p.startswith("linux-image-"))
        kver = kpkg[len("linux-image-"):]
        kernel = root / "boot" / f"vmlinuz-{kver}"
        if not kernel.exists():
            raise BuildError(f"{kpkg} has no /boot/vmlinuz-{kver}")
        initrd = build_initramfs(root, kver)
        raw = out_dir / f"{IMAGE_NAME}.raw"
        build_disk(kernel, initrd, raw, work)
        tmp_q = work / "out.qcow2"
        _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(tmp_q)])
        os.replace(tmp_q, qcow2)
        (out_dir / "versions.txt").write_text("".join(f"{k}={v}\n" for k, v in sorted(versions.items())))
    return qcow2


def register(path: Path | None = None) -> dict:
    """Upload the image as the public `pocketstack-tiny` (once; an existing active one is kept).

    Runs inside a pocketstack runtime (`common.runtime.current()` set up)."""
    from pocketstack.image import core as image_core
    from pocketstack.image import models as im
    from sqlalchemy import select
    from pocketstack.common.runtime import current

    with current().db.session() as sess:
        existing = sess.scalars(select(im.Image).where(im.Image.name == IMAGE_NAME,
                                                       im.Image.status == "active")).first()
        if existing is not None:
            return image_core.render_one(sess, existing)
    path = path or build()
    meta = {"name": IMAGE_NAME, "disk_format": "qcow2", "container_format": "bare",
            "visibility": "public", "min_disk": 1, "min_ram": 64,
            "os_distro": "pocketstack-tiny", "os_type": "linux", "hw_disk_bus": "virtio",
            "hw_vif_model": "virtio"}

    def chunks():
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    return
                yield b

    return image_core.create_image_from_stream(None, meta, chunks(), path.stat().st_size)


if __name__ == "__main__":  # pragma: no cover - manual builds: python -m pocketstack.compute.tinyimage
    logging.basicConfig(level=logging.INFO)
    print(build(force=bool(os.environ.get("FORCE"))))
