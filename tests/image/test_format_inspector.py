"""pocketstack.image.format_inspector against real images made by qemu-img.

Every image here is produced by `qemu-img create/convert` (or hand-edited from one,
or hand-built for the formats qemu cannot write: ISO 9660, MBR/GPT disks, VMDK
descriptor files, differencing VHD/VHDX/VDI), and every virtual size is compared
with what `qemu-img info` says. qemu-img comes from tools/install-system-deps.sh;
without it the tests skip, except in CI where they fail.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketstack.image.format_inspector import ImageFormatError, ImageInfo, check, detect

REPO = Path(__file__).resolve().parents[2]
ALL_DISK_FORMATS = ["raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "ami", "ari", "aki",
                    "ploop", "gpt"]
QEMU_NAME = {"vhd": "vpc", "iso": "raw"}  # our format name -> qemu's driver name
GD_AT_END = 0xFFFFFFFFFFFFFFFF
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ----------------------------------------------------------------------------- tools
@pytest.fixture(scope="session")
def qemu_img() -> str:
    exe = shutil.which("qemu-img")
    if exe is None and os.geteuid() == 0:
        subprocess.run(["bash", str(REPO / "tools" / "install-system-deps.sh")],
                       timeout=900, check=False)
        exe = shutil.which("qemu-img")
    if exe is None:
        reason = "qemu-img is not installed (run tools/install-system-deps.sh as root)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; it is required in CI")
        pytest.skip(reason)
    return exe


def run(*cmd: str | Path) -> str:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{cmd} failed: {res.stderr}"
    return res.stdout


def qemu_virtual_size(qemu_img: str, path: Path, fmt: str) -> int:
    out = run(qemu_img, "info", "-f", QEMU_NAME.get(fmt, fmt), "--output", "json", path)
    return json.loads(out)["virtual-size"]


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def vhd_checksum(footer: bytes) -> int:
    return ~(sum(footer) - sum(footer[64:68])) & 0xFFFFFFFF


def set_vhd_disk_type(path: Path, disk_type: int) -> None:
    size = path.stat().st_size
    for off in (0, size - 512):
        footer = bytearray(path.read_bytes()[off:off + 512])
        if footer[:8] != b"conectix":
            continue
        struct.pack_into(">I", footer, 60, disk_type)
        struct.pack_into(">I", footer, 64, vhd_checksum(bytes(footer)))
        patch(path, off, bytes(footer))


def vmdk_rewrite_descriptor(path: Path, edit) -> None:
    """Replace the embedded descriptor of a sparse VMDK (same region, NUL padded)."""
    data = path.read_bytes()
    desc_sector, desc_sectors = struct.unpack_from("<QQ", data, 28)
    start, length = desc_sector * 512, desc_sectors * 512
    text = data[start:start + length].split(b"\0", 1)[0].decode()
    new = edit(text).encode()
    assert len(new) <= length
    patch(path, start, new.ljust(length, b"\0"))


def vhdx_metadata_item(path: Path, item: str) -> int:
    """File offset of a VHDX metadata item (parsed here independently of the module)."""
    data = path.read_bytes()
    count = struct.unpack_from("<I", data, 192 * 1024 + 8)[0]
    for i in range(count):
        guid, offset, _len, _req = struct.unpack_from("<16sQII", data, 192 * 1024 + 16 + 32 * i)
        if uuid.UUID(bytes_le=guid) == uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E"):
            meta = offset
            break
    else:  # pragma: no cover
        raise AssertionError("no metadata region")
    n = struct.unpack_from("<H", data, meta + 10)[0]
    for i in range(n):
        guid, off, _len, _flags = struct.unpack_from("<16sIII", data, meta + 32 + 32 * i)
        if uuid.UUID(bytes_le=guid) == uuid.UUID(item):
            return meta + off
    raise AssertionError("no such metadata item")  # pragma: no cover


def build_iso(volume_blocks: int = 40, file_blocks: int | None = None, system_area: bytes = b"") -> bytes:
    """A minimal ISO 9660 image: system area, a primary volume descriptor, a terminator."""
    pvd = bytearray(2048)
    pvd[0], pvd[1:6], pvd[6] = 1, b"CD001", 1
    pvd[40:72] = b"POCKETSTACK".ljust(32)
    struct.pack_into("<I", pvd, 80, volume_blocks)
    struct.pack_into(">I", pvd, 84, volume_blocks)
    struct.pack_into("<H", pvd, 128, 2048)
    struct.pack_into(">H", pvd, 130, 2048)
    term = bytearray(2048)
    term[0], term[1:6], term[6] = 255, b"CD001", 1
    data = system_area.ljust(16 * 2048, b"\0") + bytes(pvd) + bytes(term)
    return data.ljust((file_blocks or volume_blocks) * 2048, b"\0")


def mbr(entries: list[tuple[int, int, int, int]], size: int = 1 << 20, boot_code: bytes = b"\x33\xc0") -> bytearray:
    """A disk with an MBR; entries are (boot flag, type, start LBA, sectors)."""
    disk = bytearray(size)
    disk[:len(boot_code)] = boot_code
    for i, (flag, ptype, start, sectors) in enumerate(entries):
        struct.pack_into("<B3sB3sII", disk, 446 + 16 * i, flag, b"\0\x02\0", ptype, b"\xff\xff\xff",
                         start, sectors)
    disk[510:512] = b"\x55\xaa"
    return disk


def gpt_disk(size: int = 1 << 20) -> bytearray:
    disk = mbr([(0, 0xEE, 1, size // 512 - 1)], size)
    disk[512:520] = b"EFI PART"
    return disk


# ---------------------------------------------------------------------------- images
class Images:
    def __init__(self, qemu_img: str, root: Path):
        self.qemu_img, self.root = qemu_img, root

    def create(self, name: str, fmt: str, size: str, *opts: str) -> Path:
        path = self.root / name
        args = [self.qemu_img, "create", "-q", "-f", fmt]
        if opts:
            args += ["-o", ",".join(opts)]
        run(*args, path, size)
        return path

    def convert(self, name: str, src: Path, fmt: str, *opts: str) -> Path:
        path = self.root / name
        args = [self.qemu_img, "convert", "-O", fmt]
        if opts:
            args += ["-o", ",".join(opts)]
        run(*args, src, path)
        return path

    def write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path

    def copy(self, name: str, src: Path) -> Path:
        path = self.root / name
        shutil.copyfile(src, path)
        return path


@pytest.fixture(scope="module")
def images(qemu_img, tmp_path_factory) -> Images:
    return Images(qemu_img, tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Images:
    """For hand-built images: works without qemu-img."""
    return Images("qemu-img-not-needed", tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="module")
def payload(images) -> Path:
    """3 MiB of incompressible data with a recognisable first sector, as raw."""
    data = bytearray(os.urandom(3 * 2**20))  # whole sectors: qemu rounds raw sizes up to 512
    data[:512] = b"\0" * 512  # no accidental MBR signature
    return images.write("payload.raw", bytes(data))


# Each safe image: (name, our format, builder). Builders get (images, payload).
SAFE_IMAGES = {
    "qcow2-v2": ("qcow2", lambda im, p: im.create("v2.qcow2", "qcow2", "10M", "compat=0.10")),
    "qcow2-v3": ("qcow2", lambda im, p: im.create("v3.qcow2", "qcow2", "1G")),
    "qcow2-v3-data": ("qcow2", lambda im, p: im.convert("data.qcow2", p, "qcow2")),
    "qcow2-extl2-zstd": ("qcow2", lambda im, p: im.create(
        "extl2.qcow2", "qcow2", "1G", "extended_l2=on", "compression_type=zstd")),
    "qcow2-512b-clusters": ("qcow2", lambda im, p: im.create("c512.qcow2", "qcow2", "100M", "cluster_size=512")),
    "qcow2-2m-clusters": ("qcow2", lambda im, p: im.create("c2m.qcow2", "qcow2", "100M", "cluster_size=2M")),
    "qcow2-lazy-refcounts": ("qcow2", lambda im, p: im.create("lazy.qcow2", "qcow2", "64M", "lazy_refcounts=on")),
    "vmdk-monolithicSparse": ("vmdk", lambda im, p: im.create(
        "ms.vmdk", "vmdk", "100M", "subformat=monolithicSparse")),
    "vmdk-monolithicSparse-data": ("vmdk", lambda im, p: im.convert(
        "msd.vmdk", p, "vmdk", "subformat=monolithicSparse")),
    "vmdk-streamOptimized": ("vmdk", lambda im, p: im.create(
        "so.vmdk", "vmdk", "100M", "subformat=streamOptimized")),
    "vmdk-streamOptimized-data": ("vmdk", lambda im, p: im.convert(
        "sod.vmdk", p, "vmdk", "subformat=streamOptimized")),
    "vhd-dynamic": ("vhd", lambda im, p: im.create("dyn.vhd", "vpc", "10M")),
    "vhd-dynamic-data": ("vhd", lambda im, p: im.convert("dynd.vhd", p, "vpc")),
    "vhd-fixed": ("vhd", lambda im, p: im.create("fixed.vhd", "vpc", "1M", "subformat=fixed")),
    "vhd-force-size": ("vhd", lambda im, p: im.create("forced.vhd", "vpc", "10M", "force_size=on")),
    "vhdx": ("vhdx", lambda im, p: im.create("d.vhdx", "vhdx", "100M")),
    "vhdx-data": ("vhdx", lambda im, p: im.convert("dd.vhdx", p, "vhdx")),
    "vdi": ("vdi", lambda im, p: im.create("d.vdi", "vdi", "33M")),
    "vdi-static": ("vdi", lambda im, p: im.create("s.vdi", "vdi", "1M", "static=on")),
    "iso-handmade": ("iso", lambda im, p: im.write("hand.iso", build_iso())),
    "raw": ("raw", lambda im, p: p),
    "raw-empty": ("raw", lambda im, p: im.write("empty.raw", b"")),
}


@pytest.fixture(scope="module")
def built(images, payload) -> dict[str, Path]:
    return {name: build(images, payload) for name, (_fmt, build) in SAFE_IMAGES.items()}


def _luks_qcow2(images: Images) -> Path:
    path = images.root / "luks.qcow2"
    cmd = [images.qemu_img, "create", "-q", "--object", "secret,id=sec0,data=s3cret", "-f", "qcow2",
           "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", path, "64M"]
    for _attempt in range(5):
        # the LUKS key-derivation benchmark sometimes fails on a busy machine
        # ("Unable to get accurate CPU usage"): that is qemu's problem, retry
        res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
        if res.returncode == 0:
            return path
    raise AssertionError(f"qemu-img could not create a LUKS qcow2: {res.stderr}")


# ------------------------------------------------------------------ safe, matching
@pytest.mark.parametrize("name", sorted(SAFE_IMAGES))
def test_safe_images_are_detected_with_qemus_virtual_size(name, built, qemu_img):
    fmt = SAFE_IMAGES[name][0]
    path = built[name]
    info = detect(path)
    assert info == ImageInfo(format=fmt, virtual_size=info.virtual_size, safe=True, reason=None)
    assert info.virtual_size == qemu_virtual_size(qemu_img, path, fmt)
    checked = check(path, fmt)
    assert (checked.format, checked.virtual_size, checked.safe) == (fmt, info.virtual_size, True)
    # str paths and open files work too
    assert detect(str(path)) == info
    with open(path, "rb") as f:
        assert detect(f) == info


def test_qcow2_versions(built):
    assert built["qcow2-v2"].read_bytes()[4:8] == b"\0\0\0\x02"
    assert built["qcow2-v3"].read_bytes()[4:8] == b"\0\0\0\x03"


def test_luks_encrypted_qcow2_is_accepted(images, qemu_img):
    path = _luks_qcow2(images)
    assert check(path, "qcow2").virtual_size == 64 * 2**20 == qemu_virtual_size(qemu_img, path, "qcow2")


@pytest.mark.parametrize("tool", ["genisoimage", "xorriso"])
def test_iso_built_by_real_tools(tool, images, qemu_img):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (tools/install-system-deps.sh installs xorriso)")
    src = images.root / f"isodir-{tool}"
    (src / "boot").mkdir(parents=True)
    (src / "boot" / "hello.txt").write_text("hello from pocketstack\n" * 1000)
    out = images.root / f"{tool}.iso"
    if tool == "genisoimage":
        run("genisoimage", "-quiet", "-r", "-J", "-o", out, src)
    else:
        run("xorriso", "-as", "mkisofs", "-quiet", "-r", "-J", "-o", out, src)
    info = check(out, "iso")
    assert info.format == "iso" and info.virtual_size == qemu_virtual_size(qemu_img, out, "iso")
    # ISO data is a filesystem, read as raw by hypervisors: fine as a raw disk too.
    assert check(out, "raw").virtual_size == out.stat().st_size


def test_vmdk_stream_optimized_with_footer(built, images, qemu_img):
    """A streamOptimized VMDK written as a stream: grain directory at the end, with the
    real header in a footer (as VMware writes them); qemu reads it, so do we."""
    data = bytearray(built["vmdk-streamOptimized-data"].read_bytes())
    header = bytes(data[:512])
    struct.pack_into("<Q", data, 56, GD_AT_END)
    marker = struct.pack("<QII", 0, 0, 3).ljust(512, b"\0")
    data += marker + header + bytes(512)
    path = images.write("footer.vmdk", bytes(data))
    assert check(path, "vmdk").virtual_size == qemu_virtual_size(qemu_img, path, "vmdk")

    # a footer that points somewhere else than the header is refused
    bad = bytearray(data)
    struct.pack_into("<Q", bad, len(bad) - 1024 + 28, 7)  # footer's descriptor offset
    assert "footer" in detect(images.write("badfooter.vmdk", bytes(bad))).failed_checks
    # GD_AT_END without any footer is refused
    nofooter = bytearray(built["vmdk-streamOptimized-data"].read_bytes())
    struct.pack_into("<Q", nofooter, 56, GD_AT_END)
    assert "footer" in detect(images.write("nofooter.vmdk", bytes(nofooter))).failed_checks


# ---------------------------------------------------------------------------- unsafe
def _unsafe_cases(im: Images, built: dict[str, Path]) -> dict[str, tuple[str, str, Path]]:
    """name -> (detected format, failed check, path)."""
    cases: dict[str, tuple[str, str, Path]] = {}
    base = built["qcow2-v3"]

    p = im.root / "backing.qcow2"
    run(im.qemu_img, "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", p)
    cases["qcow2-backing-file"] = ("qcow2", "backing_file", p)
    p = im.root / "backing-v2.qcow2"
    run(im.qemu_img, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", base, "-F", "qcow2", p)
    cases["qcow2-v2-backing-file"] = ("qcow2", "backing_file", p)

    ext = im.root / "external.raw"
    p = im.create("datafile.qcow2", "qcow2", "64M", f"data_file={ext}")
    cases["qcow2-data-file"] = ("qcow2", "data_file", p)
    p = im.create("datafile-raw.qcow2", "qcow2", "64M", f"data_file={ext}", "data_file_raw=on")
    cases["qcow2-data-file-raw"] = ("qcow2", "data_file", p)
    # only the header extension naming the file, feature bit cleared
    p = im.copy("datafile-ext-only.qcow2", cases["qcow2-data-file"][2])
    patch(p, 72, struct.pack(">Q", 0))
    cases["qcow2-data-file-extension-only"] = ("qcow2", "data_file", p)
    # only the feature bit, no header extension
    p = im.copy("datafile-bit-only.qcow2", base)
    patch(p, 72, struct.pack(">Q", 1 << 2))
    cases["qcow2-data-file-bit-only"] = ("qcow2", "data_file", p)

    p = im.copy("corrupt-bit.qcow2", base)
    patch(p, 72, struct.pack(">Q", 1 << 1))
    cases["qcow2-corrupt-bit"] = ("qcow2", "corrupt", p)
    p = im.copy("unknown-bit.qcow2", base)
    patch(p, 72, struct.pack(">Q", 1 << 17))
    cases["qcow2-unknown-feature"] = ("qcow2", "unknown_features", p)
    p = im.copy("aes.qcow2", base)
    patch(p, 32, struct.pack(">I", 1))
    cases["qcow2-legacy-aes"] = ("qcow2", "encryption", p)
    p = im.copy("v4.qcow2", base)
    patch(p, 4, struct.pack(">I", 4))
    cases["qcow2-version-4"] = ("qcow2", "version", p)
    cases["qcow-v1"] = ("qcow2", "version", im.create("v1.qcow", "qcow", "10M"))
    p = im.copy("bigcluster.qcow2", base)
    patch(p, 20, struct.pack(">I", 30))
    cases["qcow2-cluster-bits"] = ("qcow2", "header", p)
    p = im.copy("smalll1.qcow2", base)
    patch(p, 36, struct.pack(">I", 0))
    cases["qcow2-l1-too-small"] = ("qcow2", "header", p)
    p = im.copy("extoverflow.qcow2", base)
    (header_length,) = struct.unpack_from(">I", base.read_bytes(), 100)
    patch(p, header_length, struct.pack(">II", 0x12345678, 0x7FFFFFF0))
    cases["qcow2-extension-overflow"] = ("qcow2", "header", p)
    cases["qcow2-truncated"] = ("qcow2", "truncated", im.write("trunc.qcow2", base.read_bytes()[:70000]))
    cases["qcow2-truncated-header"] = ("qcow2", "header", im.write("trunc2.qcow2", base.read_bytes()[:50]))

    # VMDK: descriptor files, delta disks, disallowed subformats and extents
    p = im.root / "flat.vmdk"
    run(im.qemu_img, "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", p, "10M")
    cases["vmdk-monolithicFlat"] = ("vmdk", "extents", p)
    p = im.root / "split.vmdk"
    run(im.qemu_img, "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", p, "10M")
    cases["vmdk-twoGbMaxExtentSparse"] = ("vmdk", "extents", p)
    cases["vmdk-handwritten-descriptor"] = ("vmdk", "extents", im.write("hand.vmdk", (
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicSparse"\n\n# Extent description\nRW 2048 SPARSE "other.vmdk"\n'
        '\n# The Disk Data Base\n#DDB\nddb.virtualHWVersion = "4"\n').encode()))
    cases["vmdk-descriptor-no-banner"] = ("vmdk", "extents", im.write("nobanner.vmdk", (
        'version=1\ncreateType="vmfs"\nRW 2048 VMFS "/dev/sda"\n').encode()))
    p = im.copy("delta.vmdk", built["vmdk-monolithicSparse"])
    vmdk_rewrite_descriptor(p, lambda t: t.replace(
        "parentCID=ffffffff", 'parentCID=1234abcd\nparentFileNameHint="/var/lib/secret.vmdk"'))
    cases["vmdk-delta-disk"] = ("vmdk", "parent", p)
    p = im.copy("vmfs.vmdk", built["vmdk-monolithicSparse"])
    vmdk_rewrite_descriptor(p, lambda t: t.replace('"monolithicSparse"', '"vmfsSparse"'))
    cases["vmdk-embedded-createType"] = ("vmdk", "subformat", p)
    p = im.copy("abs.vmdk", built["vmdk-monolithicSparse"])
    vmdk_rewrite_descriptor(p, lambda t: t.replace('"ms.vmdk"', '"/etc/shadow"'))
    cases["vmdk-extent-path"] = ("vmdk", "extents", p)
    p = im.copy("twoext.vmdk", built["vmdk-monolithicSparse"])
    vmdk_rewrite_descriptor(p, lambda t: t.replace(
        'SPARSE "ms.vmdk"', 'SPARSE "ms.vmdk"\nRW 204800 FLAT "host.img" 0'))
    cases["vmdk-second-extent"] = ("vmdk", "extents", p)
    p = im.copy("garbage-line.vmdk", built["vmdk-monolithicSparse"])
    vmdk_rewrite_descriptor(p, lambda t: t + "\nthis is not a descriptor line\n")
    cases["vmdk-unknown-line"] = ("vmdk", "descriptor", p)
    p = im.copy("cbt.vmdk", built["vmdk-monolithicSparse"])
    vmdk_rewrite_descriptor(p, lambda t: t + '\nchangeTrackPath="disk-ctk.vmdk"\n')
    cases["vmdk-change-tracking"] = ("vmdk", "descriptor", p)
    p = im.copy("nodesc.vmdk", built["vmdk-monolithicSparse"])
    patch(p, 28, struct.pack("<QQ", 0, 0))
    cases["vmdk-no-descriptor"] = ("vmdk", "descriptor", p)
    cases["vmdk-cowd"] = ("vmdk", "subformat", im.write("cowd.vmdk", b"COWD" + bytes(2044)))

    # VHD / VHDX / VDI / QED that refer to a parent
    p = im.copy("diff.vhd", built["vhd-dynamic"])
    set_vhd_disk_type(p, 4)
    cases["vhd-differencing"] = ("vhd", "parent", p)
    p = im.copy("badsum.vhd", built["vhd-dynamic"])
    patch(p, 64, b"\0\0\0\0")
    cases["vhd-bad-checksum"] = ("vhd", "header", p)
    p = im.copy("trunc.vhd", built["vhd-fixed"])
    data = p.read_bytes()
    p.write_bytes(data[:4096] + data[-512:])
    cases["vhd-fixed-truncated"] = ("vhd", "truncated", p)
    p = im.copy("parent.vhdx", built["vhdx"])
    off = vhdx_metadata_item(p, "CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
    patch(p, off + 4, struct.pack("<I", 2))  # HasParent
    cases["vhdx-has-parent"] = ("vhdx", "parent", p)
    p = im.copy("noregion.vhdx", built["vhdx"])
    patch(p, 192 * 1024, b"XXXX")
    patch(p, 256 * 1024, b"XXXX")
    cases["vhdx-no-region-table"] = ("vhdx", "header", p)
    p = im.copy("diff.vdi", built["vdi"])
    patch(p, 0x4C, struct.pack("<I", 4))
    cases["vdi-differencing"] = ("vdi", "parent", p)
    p = im.root / "backing.qed"
    run(im.qemu_img, "create", "-q", "-f", "qed", "-b", base, "-F", "qcow2", p)
    cases["qed-backing-file"] = ("qed", "backing_file", p)

    cases["iso-truncated"] = ("iso", "truncated", im.write("trunc.iso", build_iso(100, 40)))
    return cases


@pytest.fixture(scope="module")
def unsafe(images, built):
    return _unsafe_cases(images, built)


UNSAFE_NAMES = [
    "qcow2-backing-file", "qcow2-v2-backing-file", "qcow2-data-file", "qcow2-data-file-raw",
    "qcow2-data-file-extension-only", "qcow2-data-file-bit-only", "qcow2-corrupt-bit",
    "qcow2-unknown-feature", "qcow2-legacy-aes", "qcow2-version-4", "qcow-v1", "qcow2-cluster-bits",
    "qcow2-l1-too-small", "qcow2-extension-overflow", "qcow2-truncated", "qcow2-truncated-header",
    "vmdk-monolithicFlat", "vmdk-twoGbMaxExtentSparse", "vmdk-handwritten-descriptor",
    "vmdk-descriptor-no-banner", "vmdk-delta-disk", "vmdk-embedded-createType", "vmdk-extent-path",
    "vmdk-second-extent", "vmdk-unknown-line", "vmdk-change-tracking", "vmdk-no-descriptor",
    "vmdk-cowd", "vhd-differencing", "vhd-bad-checksum", "vhd-fixed-truncated", "vhdx-has-parent",
    "vhdx-no-region-table", "vdi-differencing", "qed-backing-file", "iso-truncated",
]


def test_unsafe_case_list_is_complete(unsafe):
    assert sorted(unsafe) == sorted(UNSAFE_NAMES)


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_images_are_refused_whatever_the_declared_format(name, unsafe):
    fmt, failed_check, path = unsafe[name]
    info = detect(path)
    assert (info.format, info.safe) == (fmt, False), info
    assert failed_check in info.failed_checks, info
    assert info.reason
    for declared in ALL_DISK_FORMATS:
        with pytest.raises(ImageFormatError):
            check(path, declared)
    # even when format mismatches are tolerated, safety is not
    with pytest.raises(ImageFormatError, match="safety checks"):
        check(path, "raw", require_format_match=False)


def test_unsafe_reasons_are_user_facing(unsafe):
    with pytest.raises(ImageFormatError, match="backing file"):
        check(unsafe["qcow2-backing-file"][2], "qcow2")
    with pytest.raises(ImageFormatError, match="external data file"):
        check(unsafe["qcow2-data-file"][2], "qcow2")
    with pytest.raises(ImageFormatError, match="other.vmdk"):
        check(unsafe["vmdk-handwritten-descriptor"][2], "vmdk")
    with pytest.raises(ImageFormatError, match="parent"):
        check(unsafe["vmdk-delta-disk"][2], "vmdk")


def test_qemu_really_follows_what_we_refuse(unsafe, qemu_img):
    """The dangerous images are dangerous: qemu would open other files for them."""
    info = json.loads(run(qemu_img, "info", "--output", "json", unsafe["vmdk-delta-disk"][2]))
    assert info.get("backing-filename") == "/var/lib/secret.vmdk"
    info = json.loads(run(qemu_img, "info", "--output", "json", unsafe["qcow2-data-file"][2]))
    assert info["format-specific"]["data"]["data-file"].endswith("external.raw")


# -------------------------------------------------------------------------- mismatch
MISMATCHES = [
    ("qcow2-v3", "raw"), ("qcow2-v3", "vmdk"), ("qcow2-v2", "ami"), ("qcow2-v3", "aki"),
    ("qcow2-v3", "iso"), ("qcow2-v3", "gpt"), ("vmdk-monolithicSparse", "qcow2"),
    ("vmdk-streamOptimized", "raw"), ("vhd-dynamic", "vhdx"), ("vhd-fixed", "raw"),
    ("vhdx", "vhd"), ("vhdx", "raw"), ("vdi", "raw"), ("iso-handmade", "qcow2"),
    ("raw", "qcow2"), ("raw", "vmdk"), ("raw", "vhd"), ("raw", "vhdx"), ("raw", "vdi"),
    ("raw", "iso"), ("raw", "gpt"), ("raw-empty", "qcow2"),
]


@pytest.mark.parametrize("name,declared", MISMATCHES)
def test_format_mismatch_is_refused(name, declared, built):
    with pytest.raises(ImageFormatError) as exc:
        check(built[name], declared)
    assert declared in str(exc.value)


def test_mismatch_message_names_the_real_format(built):
    with pytest.raises(ImageFormatError, match=r"qcow2 format.*disk_format raw"):
        check(built["qcow2-v3"], "raw")
    with pytest.raises(ImageFormatError, match=r"not in qcow2 format"):
        check(built["raw"], "qcow2")


def test_require_format_match_false_lets_safe_mismatches_through(built):
    info = check(built["qcow2-v3"], "raw", require_format_match=False)
    assert info.format == "qcow2"
    assert info.virtual_size == built["qcow2-v3"].stat().st_size  # raw: the bytes as they are
    assert check(built["raw"], "qcow2", require_format_match=False).virtual_size is None


@pytest.mark.parametrize("declared", ["raw", "ami", "ari", "aki", "ploop"])
def test_raw_family_accepts_unrecognised_data(declared, built):
    info = check(built["raw"], declared)
    assert info.format == "raw" and info.safe
    expected = built["raw"].stat().st_size if declared == "raw" else None
    assert info.virtual_size == expected


# --------------------------------------------------------------- MBR / GPT / hybrids
def test_partitioned_raw_disks(scratch):
    msdos = scratch.write("msdos.img", bytes(mbr([(0x80, 0x83, 2048, 4096), (0, 0x82, 6144, 1024)], 4 << 20)))
    info = check(msdos, "raw")
    assert (info.format, info.partition_table, info.virtual_size) == ("raw", "mbr", 4 << 20)
    assert check(msdos, "gpt").partition_table == "mbr"  # gpt is a superset of MBR

    gpt = scratch.write("gpt.img", bytes(gpt_disk()))
    info = check(gpt, "raw")
    assert (info.format, info.partition_table) == ("raw", "gpt")
    assert check(gpt, "gpt").virtual_size == 1 << 20


def test_mbr_safety_checks_and_the_nonfatal_knob(scratch):
    bad = scratch.write("badflag.img", bytes(mbr([(0x42, 0x83, 2048, 4096)])))
    info = detect(bad)
    assert (info.format, info.safe, info.failed_checks) == ("raw", False, ("mbr",))
    for declared in ("raw", "gpt"):
        with pytest.raises(ImageFormatError, match="MBR"):
            check(bad, declared)
        assert check(bad, declared, gpt_safety_checks_nonfatal=["mbr"]).format == "raw"
    # kernels, ramdisks and machine images need not look like disks
    assert check(bad, "aki").format == "raw"

    hybrid = gpt_disk()
    struct.pack_into("<B3sB3sII", hybrid, 446 + 16, 0, b"\0\x02\0", 0x0C, b"\xff\xff\xff", 2048, 100)
    hybrid_path = scratch.write("hybridmbr.img", bytes(hybrid))
    assert detect(hybrid_path).failed_checks == ("gptmbr",)
    with pytest.raises(ImageFormatError, match="protective MBR"):
        check(hybrid_path, "raw")
    assert check(hybrid_path, "raw", gpt_safety_checks_nonfatal=["gptmbr"]).partition_table == "gpt"

    no_header = gpt_disk()
    no_header[512:520] = bytes(8)
    assert "gptmbr" in detect(scratch.write("nogpthdr.img", bytes(no_header))).failed_checks
    wrong_start = gpt_disk()
    struct.pack_into("<I", wrong_start, 446 + 8, 63)
    assert "gptmbr" in detect(scratch.write("gptstart.img", bytes(wrong_start))).failed_checks


def test_boot_sectors_that_are_not_partition_tables(scratch):
    # FAT volume boot record: jump, OEM name, BIOS parameter block, 0x55AA
    fat = bytearray(1 << 20)
    fat[0:3] = b"\xeb\x3c\x90"
    fat[3:11] = b"mkfs.fat"
    struct.pack_into("<HBHBHHBH", fat, 11, 512, 4, 4, 2, 512, 0, 0xF8, 200)
    fat[0x36:0x3E] = b"FAT16   "
    fat[446:510] = bytes(range(64))  # boot code, not a partition table
    fat[510:512] = b"\x55\xaa"
    info = check(scratch.write("fat.img", bytes(fat)), "raw")
    assert (info.partition_table, info.safe) == (None, True)

    kernel = bytearray(64 * 1024)
    kernel[446:510] = b"Use a boot loader.\r\n\nRemove disk and press any key to reboot...\r\n"[:64]
    kernel[510:512] = b"\x55\xaa"
    kernel[0x202:0x206] = b"HdrS"
    for declared in ("aki", "raw"):
        assert check(scratch.write("vmlinuz", bytes(kernel)), declared).format == "raw"


def test_hybrid_iso_is_an_iso(scratch):
    """Bootable-as-disk ISOs carry an MBR/GPT in the system area: still ISO (as Glance)."""
    system_area = bytes(mbr([(0x80, 0x17, 0, 80)], 512))
    path = scratch.write("hybrid.iso", build_iso(80, system_area=system_area))
    info = check(path, "iso")
    assert (info.format, info.virtual_size) == ("iso", 80 * 2048)
    assert check(path, "raw").format == "iso"
    with pytest.raises(ImageFormatError):
        check(path, "qcow2")


def test_polyglots_are_judged_by_what_a_hypervisor_would_probe(built, images):
    # a qcow2 header in front of an ISO: it is a qcow2 (qemu probes the start)
    iso = bytearray(build_iso())
    q = built["qcow2-v3"].read_bytes()[:4096]
    iso[:len(q)] = q
    path = images.write("qcow2-iso.bin", bytes(iso))
    assert detect(path).format == "qcow2"
    with pytest.raises(ImageFormatError):
        check(path, "iso")
    # raw data that ends in a VHD footer is a fixed VHD, not raw
    tail = built["vhd-fixed"].read_bytes()[-512:]
    path = images.write("raw-with-footer.bin", built["raw"].read_bytes() + tail)
    assert detect(path).format == "vhd"
    with pytest.raises(ImageFormatError, match="vhd"):
        check(path, "raw")
    # UDF-only volume recognition sequence
    udf = bytearray(64 * 2048)
    for i, ident in enumerate((b"BEA01", b"NSR02", b"TEA01")):
        udf[(16 + i) * 2048 + 1:(16 + i) * 2048 + 6] = ident
    assert check(images.write("udf.iso", bytes(udf)), "iso").virtual_size == len(udf)


# --------------------------------------------------------------------- bounded reads
class CountingFile(io.RawIOBase):
    def __init__(self, path: Path):
        self._f = open(path, "rb")
        self.bytes_read = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=os.SEEK_SET):
        return self._f.seek(offset, whence)

    def tell(self):
        return self._f.tell()

    def read(self, n=-1):
        data = self._f.read(n)
        self.bytes_read += len(data)
        return data

    def close(self):
        self._f.close()
        super().close()


def test_only_headers_are_read(built, unsafe, images):
    paths = list(built.values()) + [p for _, _, p in unsafe.values()]
    for path in paths:
        f = CountingFile(path)
        try:
            detect(f)
        finally:
            f.close()
        assert f.bytes_read <= 2.2 * 2**20, (path, f.bytes_read)
    # a 1 TiB sparse file: nothing near its size is read
    big = images.root / "huge.qcow2"
    shutil.copyfile(built["qcow2-v3"], big)
    with open(big, "r+b") as f:
        f.truncate(1 << 40)
    for target in (big, images.write("huge.raw", b"")):
        with open(target, "r+b") as f:
            f.truncate(1 << 40)
        counted = CountingFile(target)
        start = time.monotonic()
        info = detect(counted)
        counted.close()
        assert time.monotonic() - start < 5
        assert counted.bytes_read < 3 * 2**20
        assert info.virtual_size in (1 << 30, 1 << 40)


# ----------------------------------------------------------------- robustness/fuzzing
def _never_crashes(data: bytes) -> None:
    f = io.BytesIO(data)
    info = detect(f)
    assert isinstance(info, ImageInfo)
    assert info.format in {"raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "qed", "iso"}
    assert info.safe == (info.reason is None)
    for declared in ALL_DISK_FORMATS:
        try:
            check(f, declared)
        except ImageFormatError:
            pass


def _with_vdi_signature(tail: bytes) -> bytes:
    head = bytearray(b"<<< QEMU VM Virtual Disk Image >>>\n".ljust(0x40, b"\0"))
    return bytes(head) + struct.pack("<I", 0xBEDA107F) + tail


PREFIXES = {
    "qcow2": lambda t: b"QFI\xfb" + t,
    "qcow2-v2": lambda t: b"QFI\xfb\0\0\0\x02" + t,
    "qcow2-v3": lambda t: b"QFI\xfb\0\0\0\x03" + t,
    "qed": lambda t: b"QED\0" + t,
    "vmdk": lambda t: b"KDMV" + t,
    "vmdk-v1": lambda t: b"KDMV\x01\0\0\0" + t,
    "cowd": lambda t: b"COWD" + t,
    "vmdk-text": lambda t: b"# Disk DescriptorFile\n" + t,
    "vmdk-version": lambda t: b"version=1\n" + t,
    "vhdx": lambda t: b"vhdxfile" + t,
    "vhd": lambda t: b"conectix" + t,
    "vhd-tail": lambda t: t + b"conectix" + bytes(504),
    "vdi": _with_vdi_signature,
    "iso": lambda t: bytes(0x8001) + b"CD001" + t,
    "mbr": lambda t: bytes(510) + b"\x55\xaa" + t,
}


@pytest.mark.parametrize("prefix", sorted(PREFIXES))
@FUZZ
@given(tail=st.binary(max_size=4096))
def test_fuzz_valid_magic_random_rest(prefix, tail):
    _never_crashes(PREFIXES[prefix](tail))


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes(data):
    _never_crashes(data)


@FUZZ
@given(version=st.sampled_from([0, 1, 2, 3, 4, 0xFFFFFFFF]), bf_offset=st.sampled_from([0, 8, 200, 2**63, 2**64 - 1]),
       bf_size=st.integers(0, 2**32 - 1), cluster_bits=st.integers(0, 40), size=st.integers(0, 2**64 - 1),
       crypt=st.integers(0, 3), l1_size=st.integers(0, 2**32 - 1), l1_offset=st.integers(0, 2**64 - 1),
       rc_offset=st.integers(0, 2**64 - 1), rc_clusters=st.integers(0, 2**32 - 1),
       incompat=st.integers(0, 2**64 - 1), autoclear=st.integers(0, 3), refcount_order=st.integers(0, 9),
       header_length=st.integers(0, 2**32 - 1), extensions=st.binary(max_size=512),
       file_size=st.integers(0, 300000))
def test_fuzz_structured_qcow2_headers(version, bf_offset, bf_size, cluster_bits, size, crypt, l1_size,
                                       l1_offset, rc_offset, rc_clusters, incompat, autoclear,
                                       refcount_order, header_length, extensions, file_size):
    hdr = struct.pack(">4sIQIIQIIQQIIQQQQII", b"QFI\xfb", version, bf_offset, bf_size, cluster_bits, size,
                      crypt, l1_size, l1_offset, rc_offset, rc_clusters, 0, 0, incompat, 0, autoclear,
                      refcount_order, header_length)
    data = (hdr + extensions).ljust(min(file_size, 1 << 20), b"\0")
    _never_crashes(data)
    info = detect(io.BytesIO(data))
    assert info.format == "qcow2"
    if bf_offset:
        assert not info.safe


@FUZZ
@given(version=st.integers(0, 4), capacity=st.integers(0, 2**64 - 1), grain=st.integers(0, 2**64 - 1),
       desc_offset=st.sampled_from([0, 1, 2, 2**40, 2**64 - 1]), desc_size=st.integers(0, 3000),
       gd_offset=st.sampled_from([0, 21, GD_AT_END]), descriptor=st.text(max_size=600),
       tail=st.binary(max_size=1600))
def test_fuzz_structured_vmdk(version, capacity, grain, desc_offset, desc_size, gd_offset, descriptor, tail):
    hdr = struct.pack("<4sIIQQQQIQQQ", b"KDMV", version, 3, capacity, grain, desc_offset, desc_size, 512,
                      0, gd_offset, 0).ljust(512, b"\0")
    _never_crashes(hdr + descriptor.encode("utf-8", "surrogatepass") + tail)
    _never_crashes(descriptor.encode("utf-8", "surrogatepass"))


_ORIGINALS: dict[str, bytes] = {}


@pytest.mark.parametrize("name", sorted(SAFE_IMAGES))
@FUZZ
@given(data=st.data())
def test_fuzz_mutated_and_truncated_real_images(name, data, built):
    if name not in _ORIGINALS:
        _ORIGINALS[name] = built[name].read_bytes()
    original = _ORIGINALS[name]
    if not original:
        return
    buf = bytearray(original)
    n = len(buf)
    position = st.one_of(st.integers(0, min(n, 1024) - 1), st.integers(0, n - 1),
                         st.integers(max(0, n - 1536), n - 1))
    for pos, value in data.draw(st.lists(st.tuples(position, st.integers(0, 255)), max_size=8)):
        buf[pos] = value
    cut = data.draw(st.one_of(st.just(n), st.integers(0, n)))
    _never_crashes(bytes(buf[:cut]))


@pytest.mark.parametrize("data,fmt", [
    (b"", "raw"), (b"\0", "raw"), (b"QFI\xfb", "qcow2"), (b"QFI\xfb\0\0\0\x03", "qcow2"),
    (b"KDMV", "vmdk"), (b"conectix", "vhd"), (b"vhdxfile", "vhdx"), (b"QED\0", "qed"),
    (b"# Disk DescriptorFile", "vmdk"),
])
def test_tiny_files(data, fmt, scratch):
    path = scratch.write("tiny.bin", data)
    info = detect(path)
    assert info.format == fmt
    assert info.safe == (fmt == "raw")
    if fmt != "raw":
        with pytest.raises(ImageFormatError):
            check(path, fmt)


def test_unreadable_path_is_not_a_format_error(tmp_path):
    with pytest.raises(OSError):
        detect(tmp_path / "missing.img")
