"""Config drive: the metadata trees written to an ISO 9660 image labelled `config-2`.

cloud-init and CirrOS look for a block device with that label and read
`openstack/latest/meta_data.json` etc. from it, so a guest configures itself without
a metadata server. Built in pure Python with pycdlib (Joliet + Rock Ridge, so long
lower-case names survive), which needs neither root nor genisoimage/xorriso.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pycdlib

from pocketstack.compute import metadata

LABEL = "config-2"


def files_for(inst: metadata.InstanceView) -> dict[str, bytes]:
    files = metadata.openstack_tree(inst, config_drive=True)
    files.update(metadata.ec2_tree(inst))
    return files


def build_iso(files: dict[str, bytes], dest: Path) -> Path:
    """Write `files` (relative path -> content) as an ISO 9660 image at `dest`, atomically.

    Readers use the Rock Ridge and Joliet names; the primary ISO 9660 names only need to
    be valid (upper-case, short) and unique, so they are numbered."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    iso_dirs: dict[str, str] = {"": ""}  # our path -> its ISO 9660 path
    for n, (path, data) in enumerate(sorted(files.items())):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in iso_dirs:
                parent = iso_dirs["/".join(parts[:depth - 1])]
                iso_dirs[directory] = f"{parent}/D{len(iso_dirs):07d}"
                iso.add_directory(iso_dirs[directory], rr_name=parts[depth - 1], joliet_path="/" + directory)
        parent = iso_dirs["/".join(parts[:-1])]
        iso.add_fp(io.BytesIO(data), len(data), f"{parent}/F{n:07d}.;1", rr_name=parts[-1],
                   joliet_path="/" + path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".configdrive-")
    os.close(fd)
    try:
        iso.write(tmp)
        iso.close()
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def read_iso(path: Path) -> dict[str, bytes]:
    """The files of a config drive by their Rock Ridge paths (for tests and the drivers)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    out: dict[str, bytes] = {}
    try:
        for dirname, _dirs, files in iso.walk(rr_path="/"):
            for name in files:
                rr = (dirname.rstrip("/") + "/" + name)
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=rr)
                out[rr.lstrip("/")] = buf.getvalue()
    finally:
        iso.close()
    return out
