"""The ring: which devices hold which partition, and the builder that decides it.

The model is upstream Swift's (partition power, fractional replicas, min_part_hours, devices
in region > zone > server tiers, weights); the code and the file formats are our own.

`RingBuilder` keeps the full state in a JSON builder file (written atomically) and assigns
partitions to devices:

* every tier (region, zone, server, device) gets a *quota* of replicas per partition, in
  proportion to its weight, but never more than one replica per device (when there are at least
  as many devices as replicas); the per-partition ceiling of a tier's quota bounds how many
  replicas of one partition it may hold, which spreads replicas over regions, then zones, then
  servers as far as the weights allow;
* `rebalance()` frees only what must move (replicas on removed or zero-weight devices, replicas
  that break the per-tier bounds, and the excess of over-full devices), at most one replica of a
  partition per rebalance and only partitions not moved within `min_part_hours`, then places each
  freed replica walking down the tiers to the least-filled eligible one.

`Ring` reads the derived `.ring.gz` file and maps `/account/container/object` to a partition
(md5 of the path with the configured hash prefix/suffix) and to its devices, plus handoffs.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import os
import random
import re
import struct
import sys
import time
import uuid
from array import array
from pathlib import Path

NONE_DEV = 0xFFFF           # an unassigned replica slot
MAX_BALANCE = 999.99        # a device that holds partitions it should not (weight 0 / removed)
MAX_HOURS = 255             # last_part_moves saturate here (one byte per partition)
BUILDER_FORMAT = "pocketstack-ring-builder/1"
RING_FORMAT = "pocketstack-ring/1"
DEV_KEYS = ("id", "region", "zone", "ip", "port", "replication_ip", "replication_port", "device",
            "weight", "meta")


class RingError(ValueError):
    """A request the builder cannot honour (bad arguments, no devices, unreadable file)."""


# ---------------------------------------------------------------------------- helpers
def _encode_array(arr: array) -> str:
    data = arr.tobytes() if sys.byteorder == "little" or arr.typecode == "B" else _swapped(arr).tobytes()
    return base64.b64encode(data).decode("ascii")


def _decode_array(typecode: str, text: str) -> array:
    arr = array(typecode)
    arr.frombytes(base64.b64decode(text))
    if sys.byteorder != "little" and typecode != "B":
        arr.byteswap()
    return arr


def _swapped(arr: array) -> array:
    copy = array(arr.typecode, arr)
    copy.byteswap()
    return copy


def _atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def format_device(dev: dict) -> str:
    """`d0r1z1-10.0.0.1:6200R10.0.0.1:6200/sdb1_"meta"`, as upstream's tools print a device."""
    return (f'd{dev["id"]}r{dev["region"]}z{dev["zone"]}-{_ip(dev["ip"])}:{dev["port"]}'
            f'R{_ip(dev["replication_ip"])}:{dev["replication_port"]}/{dev["device"]}_"{dev["meta"]}"')


def _ip(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _weight_str(weight: float) -> str:
    return repr(float(weight))


def hash_path(account: str, container: str | None = None, obj: str | None = None, *,
              prefix: str | bytes = b"", suffix: str | bytes = b"", raw: bool = False):
    """md5 of prefix + `/account[/container[/object]]` + suffix (upstream's `hash_path`)."""
    if obj and not container:
        raise ValueError("an object needs a container")
    parts = [account] + ([container] if container else []) + ([obj] if obj else [])
    path = "/" + "/".join(parts)
    enc = [x.encode("utf-8") if isinstance(x, str) else x for x in (prefix, path, suffix)]
    digest = hashlib.md5(b"".join(enc), usedforsecurity=False)
    return digest.digest() if raw else digest.hexdigest()


# ---------------------------------------------------------------------------- builder
class RingBuilder:
    def __init__(self, part_power: int, replicas: float, min_part_hours: int):
        if not 0 < int(part_power) <= 32:
            raise RingError("part_power must be between 1 and 32")
        if float(replicas) < 1:
            raise RingError("replicas must be at least 1")
        if not 0 <= int(min_part_hours) <= MAX_HOURS:
            raise RingError(f"min_part_hours must be between 0 and {MAX_HOURS}")
        self.part_power = int(part_power)
        self.replicas = float(replicas)
        self.min_part_hours = int(min_part_hours)
        self.parts = 2 ** self.part_power
        self.devs: list[dict | None] = []
        self.version = 0
        self.id = uuid.uuid4().hex
        self.overload = 0.0
        self.devs_changed = False
        self.remove_devs: list[int] = []        # ids marked for removal at the next rebalance
        self.rows: list[array] | None = None    # replica -> partition -> device id
        self.last_part_moves = array("B", bytes(self.parts))
        self.last_part_moves_epoch = 0.0
        self.dispersion = 0.0

    # -------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {
            "format": BUILDER_FORMAT, "id": self.id, "version": self.version,
            "part_power": self.part_power, "replicas": self.replicas, "min_part_hours": self.min_part_hours,
            "overload": self.overload, "devs_changed": self.devs_changed, "remove_devs": self.remove_devs,
            "devs": [None if d is None else {k: d[k] for k in DEV_KEYS} for d in self.devs],
            "replica2part2dev": None if self.rows is None else [_encode_array(r) for r in self.rows],
            "last_part_moves": _encode_array(self.last_part_moves),
            "last_part_moves_epoch": self.last_part_moves_epoch, "dispersion": self.dispersion,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "RingBuilder":
        if data.get("format") != BUILDER_FORMAT:
            raise RingError("not a pocketstack ring builder file")
        b = cls(data["part_power"], data["replicas"], data["min_part_hours"])
        b.id, b.version, b.overload = data["id"], data["version"], data.get("overload", 0.0)
        b.devs_changed, b.remove_devs = data["devs_changed"], list(data["remove_devs"])
        b.devs = [None if d is None else dict(d) for d in data["devs"]]
        if data["replica2part2dev"] is not None:
            b.rows = [_decode_array("H", r) for r in data["replica2part2dev"]]
        b.last_part_moves = _decode_array("B", data["last_part_moves"])
        b.last_part_moves_epoch = data["last_part_moves_epoch"]
        b.dispersion = data.get("dispersion", 0.0)
        return b

    def save(self, path) -> None:
        _atomic_write(Path(path), json.dumps(self.to_dict(), separators=(",", ":")).encode())

    @classmethod
    def load(cls, path) -> "RingBuilder":
        try:
            data = json.loads(Path(path).read_bytes())
        except FileNotFoundError:
            raise RingError(f"Ring Builder file does not exist: {path}") from None
        except (OSError, ValueError) as exc:
            raise RingError(f"cannot read ring builder file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise RingError(f"{path} is not a pocketstack ring builder file")
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise RingError(f"{path} is not a pocketstack ring builder file ({exc})") from None

    def ring_data(self) -> dict:
        if self.rows is None:
            raise RingError("the ring has not been rebalanced yet")
        return {"format": RING_FORMAT, "version": self.version, "id": self.id,
                "part_shift": 32 - self.part_power,
                "devs": [None if d is None else {k: d[k] for k in DEV_KEYS} for d in self.devs],
                "replica2part2dev": [_encode_array(r) for r in self.rows]}

    def write_ring(self, path) -> None:
        raw = json.dumps(self.ring_data(), separators=(",", ":")).encode()
        _atomic_write(Path(path), gzip.compress(raw, mtime=0))

    # -------------------------------------------------------------- devices
    @property
    def active_devs(self) -> list[dict]:
        return [d for d in self.devs if d is not None]

    def add_dev(self, dev: dict) -> int:
        dev = dict(dev)
        for key in ("zone", "ip", "port", "device", "weight"):
            if dev.get(key) in (None, ""):
                raise RingError(f"a device needs a {key}")
        dev.setdefault("region", 1)
        if dev.get("region") is None:
            dev["region"] = 1
        dev["replication_ip"] = dev.get("replication_ip") or dev["ip"]
        dev["replication_port"] = dev.get("replication_port") or dev["port"]
        dev["meta"] = dev.get("meta") or ""
        for key in ("region", "zone", "port", "replication_port"):
            dev[key] = int(dev[key])
            if dev[key] < 0:
                raise RingError(f"{key} must not be negative")
        dev["weight"] = float(dev["weight"])
        if dev["weight"] < 0 or math.isnan(dev["weight"]):
            raise RingError("weight must not be negative")
        for other in self.active_devs:
            if (other["ip"], other["port"], other["device"]) == (dev["ip"], dev["port"], dev["device"]):
                raise RingError(f"Device {other['id']} already uses {_ip(dev['ip'])}:{dev['port']}/{dev['device']}.")
        if dev.get("id") is None:
            dev["id"] = next((i for i, d in enumerate(self.devs) if d is None and i not in self.remove_devs),
                             len(self.devs))
        dev["id"] = int(dev["id"])
        if dev["id"] >= NONE_DEV:
            raise RingError("too many devices")
        if dev["id"] < len(self.devs) and self.devs[dev["id"]] is not None:
            raise RingError(f"Duplicate device id: {dev['id']}")
        while len(self.devs) <= dev["id"]:
            self.devs.append(None)
        self.devs[dev["id"]] = {k: dev[k] for k in DEV_KEYS}
        self.devs_changed = True
        self.version += 1
        return dev["id"]

    def set_dev_weight(self, dev_id: int, weight: float) -> None:
        weight = float(weight)
        if weight < 0 or math.isnan(weight):
            raise RingError("weight must not be negative")
        self.devs[dev_id]["weight"] = weight
        self.devs_changed = True
        self.version += 1

    def remove_dev(self, dev_id: int) -> None:
        dev = self.devs[dev_id]
        dev["weight"] = 0.0
        if dev_id not in self.remove_devs:
            self.remove_devs.append(dev_id)
        self.devs_changed = True
        self.version += 1

    def search_devs(self, criteria: dict) -> list[dict]:
        out = []
        for dev in self.active_devs:
            if all(dev[k] == v if k not in ("ip", "replication_ip") else _norm_ip(dev[k]) == _norm_ip(v)
                   for k, v in criteria.items()):
                out.append(dev)
        return out

    # -------------------------------------------------------------- accounting
    def _slots(self) -> int:
        whole = int(self.replicas)
        return whole * self.parts + int(round((self.replicas - whole) * self.parts))

    def _row_lengths(self) -> list[int]:
        whole = int(self.replicas)
        lengths = [self.parts] * whole
        frac = int(round((self.replicas - whole) * self.parts))
        if frac:
            lengths.append(frac)
        return lengths

    def dev_parts(self) -> dict[int, int]:
        counts = {d["id"]: 0 for d in self.active_devs}
        for row in self.rows or []:
            for dev_id in row:
                if dev_id != NONE_DEV:
                    counts[dev_id] = counts.get(dev_id, 0) + 1
        return counts

    @staticmethod
    def _tiers(dev: dict) -> tuple:
        r, z = dev["region"], dev["zone"]
        return ((r,), (r, z), (r, z, dev["ip"]), (r, z, dev["ip"], dev["id"]))

    def _quotas(self) -> tuple[dict, dict, dict]:
        """Replicas per partition each tier should hold (float), its per-partition bound (int),
        and the tree (tier -> child tiers), for the devices that can take partitions."""
        devs = [d for d in self.active_devs if d["weight"] > 0 and d["id"] not in self.remove_devs]
        children: dict[tuple, list] = {}
        weight: dict[tuple, float] = {}
        ndevs: dict[tuple, int] = {}
        for dev in devs:
            parent = ()
            for tier in self._tiers(dev):
                if tier not in weight:
                    children.setdefault(parent, []).append(tier)
                weight[tier] = weight.get(tier, 0.0) + dev["weight"]
                ndevs[tier] = ndevs.get(tier, 0) + 1
                parent = tier
        quota: dict[tuple, float] = {}
        if not devs:
            return quota, {}, children
        per_dev = 1 if len(devs) >= self.replicas else math.ceil(self.replicas / len(devs))
        quota[()] = min(self.replicas, per_dev * len(devs))

        def share(tier):
            kids = children.get(tier, [])
            remaining, open_ = quota[tier], list(kids)
            while open_:
                total = sum(weight[k] for k in open_)
                capped = [k for k in open_ if remaining * weight[k] / total > per_dev * ndevs[k] + 1e-12]
                if not capped:
                    for k in open_:
                        quota[k] = remaining * weight[k] / total
                    break
                for k in capped:
                    quota[k] = float(per_dev * ndevs[k])
                    remaining -= quota[k]
                    open_.remove(k)
            for k in kids:
                share(k)

        share(())
        bound = {t: max(1, math.ceil(q - 1e-9)) for t, q in quota.items()}
        return quota, bound, children

    def parts_wanted(self) -> dict[int, float]:
        """Partitions (replicas) each device should hold, from its weight."""
        quota, _, _ = self._quotas()
        scale = self._slots() / self.replicas
        return {d["id"]: quota.get(self._tiers(d)[-1], 0.0) * scale for d in self.active_devs}

    def get_balance(self) -> float:
        if not self.active_devs:
            return 0.0
        wanted = self.parts_wanted()
        counts = self.dev_parts()
        balance = 0.0
        for dev in self.active_devs:
            want, have = wanted[dev["id"]], counts.get(dev["id"], 0)
            if want <= 0:
                dev_balance = MAX_BALANCE if have else 0.0
            else:
                dev_balance = abs(100.0 * have / want - 100.0)
            balance = max(balance, dev_balance)
        return balance

    def dev_balance(self, dev: dict, wanted: dict, counts: dict) -> float:
        want, have = wanted.get(dev["id"], 0.0), counts.get(dev["id"], 0)
        if want <= 0:
            return MAX_BALANCE if have else 0.0
        return 100.0 * have / want - 100.0

    def _dispersion_bounds(self, children: dict) -> dict:
        """The fewest replicas per tier one partition can have, ignoring weights."""
        bounds: dict[tuple, int] = {}

        def walk(tier, most):
            kids = children.get(tier, [])
            for k in kids:
                bounds[k] = max(1, math.ceil(most / len(kids)))
                walk(k, bounds[k])

        walk((), math.ceil(self.replicas))
        return bounds

    def get_dispersion(self) -> float:
        """Percentage of partitions with more replicas in one tier than necessary."""
        if not self.rows:
            return 0.0
        _, _, children = self._quotas()
        bounds = self._dispersion_bounds(children)
        at_risk = 0
        for part in range(self.parts):
            counts: dict[tuple, int] = {}
            for row in self.rows:
                if part < len(row) and row[part] != NONE_DEV and self.devs[row[part]] is not None:
                    for tier in self._tiers(self.devs[row[part]]):
                        counts[tier] = counts.get(tier, 0) + 1
            if any(n > bounds.get(t, n) for t, n in counts.items()):
                at_risk += 1
        return 100.0 * at_risk / self.parts

    # -------------------------------------------------------------- min_part_hours
    def _age_part_moves(self, now: float) -> None:
        if self.last_part_moves_epoch:
            hours = int((now - self.last_part_moves_epoch) // 3600)
            if hours > 0:
                self.last_part_moves = array("B", (min(MAX_HOURS, h + hours) for h in self.last_part_moves))
                self.last_part_moves_epoch += hours * 3600
        else:
            self.last_part_moves_epoch = now

    def pretend_min_part_hours_passed(self) -> None:
        self.last_part_moves = array("B", [MAX_HOURS]) * self.parts

    def min_part_seconds_left(self, now: float | None = None) -> int:
        if not self.last_part_moves_epoch or self.rows is None:
            return 0
        now = time.time() if now is None else now
        youngest = min(self.last_part_moves) if self.parts else MAX_HOURS
        elapsed = now - self.last_part_moves_epoch
        return max(0, int(self.min_part_hours * 3600 - youngest * 3600 - elapsed))

    # -------------------------------------------------------------- rebalance
    def rebalance(self, seed: int | None = None, now: float | None = None) -> tuple[int, float, int]:
        """Reassign what must move. Returns (partitions moved, balance, devices removed)."""
        now = time.time() if now is None else now
        rng = random.Random(seed)
        quota, bound, children = self._quotas()
        if not quota:
            raise RingError("no devices with weight to assign partitions to")
        self._age_part_moves(now)
        before = [array("H", r) for r in self.rows] if self.rows else []
        lengths = self._row_lengths()
        rows = [array("H", r) for r in self.rows] if self.rows else []
        unassigned: list[tuple[int, int]] = []       # (row, part)
        moved = bytearray(self.parts)               # one replica per partition per rebalance
        # 1. replica count changed: grow/shrink rows
        while len(rows) > len(lengths):
            rows.pop()
        for r, length in enumerate(lengths):
            if r == len(rows):
                rows.append(array("H", [NONE_DEV]) * length)
            elif len(rows[r]) > length:
                del rows[r][length:]
            elif len(rows[r]) < length:
                rows[r].extend(array("H", [NONE_DEV]) * (length - len(rows[r])))
        self.rows = rows
        usable = {d["id"] for d in self.active_devs if d["weight"] > 0 and d["id"] not in self.remove_devs}
        scale = self._slots() / self.replicas
        wanted = {t: q * scale for t, q in quota.items()}
        assigned = {t: 0 for t in quota}
        # 2. replicas on removed / zero-weight devices must go, whatever min_part_hours says
        for r, row in enumerate(rows):
            for part, dev_id in enumerate(row):
                if dev_id == NONE_DEV:
                    unassigned.append((r, part))
                elif dev_id not in usable:
                    row[part] = NONE_DEV
                    unassigned.append((r, part))
                    moved[part] = 1
                else:
                    for tier in self._tiers(self.devs[dev_id]):
                        assigned[tier] += 1
        movable = [self.last_part_moves[p] >= self.min_part_hours for p in range(self.parts)]

        def release(r: int, part: int) -> None:
            dev_id = rows[r][part]
            for tier in self._tiers(self.devs[dev_id]):
                assigned[tier] -= 1
            rows[r][part] = NONE_DEV
            unassigned.append((r, part))
            moved[part] = 1

        def fill(tier) -> float:
            return assigned[tier] / wanted[tier] if wanted[tier] > 0 else math.inf

        # 3. replicas beyond a tier's per-partition bound (too many in one region/zone/server/device)
        order = list(range(self.parts))
        rng.shuffle(order)
        for part in order:
            if moved[part] or not movable[part]:
                continue
            held = [(r, rows[r][part]) for r in range(len(rows)) if part < len(rows[r]) and rows[r][part] != NONE_DEV]
            counts: dict[tuple, int] = {}
            for _, dev_id in held:
                for tier in self._tiers(self.devs[dev_id]):
                    counts[tier] = counts.get(tier, 0) + 1
            crowded = [t for t, n in counts.items() if n > bound[t]]
            if crowded:
                top = min(crowded, key=len)
                r, _ = max(((r, d) for r, d in held if self._tiers(self.devs[d])[len(top) - 1] == top),
                           key=lambda rd: fill(self._tiers(self.devs[rd[1]])[-1]))
                release(r, part)
        # 4. over-full devices (then over-full tiers above them) shed replicas down to their share
        def overfull(dev_id) -> bool:
            return any(assigned[t] > math.ceil(wanted[t] - 1e-9) for t in self._tiers(self.devs[dev_id]))

        for part in order:
            if moved[part] or not movable[part]:
                continue
            for r in range(len(rows)):
                if part < len(rows[r]) and rows[r][part] != NONE_DEV and overfull(rows[r][part]):
                    release(r, part)
                    break
        # 5. place every free replica: down the tiers, the least-filled one still under its bound
        unassigned.sort(key=lambda rp: (rp[1], rp[0]))
        for r, part in unassigned:
            held = [rows[x][part] for x in range(len(rows)) if part < len(rows[x]) and rows[x][part] != NONE_DEV]
            counts: dict[tuple, int] = {}
            for dev_id in held:
                for tier in self._tiers(self.devs[dev_id]):
                    counts[tier] = counts.get(tier, 0) + 1
            tier = ()
            while len(tier) < 4:
                kids = children[tier]
                ok = [k for k in kids if counts.get(k, 0) < bound[k]] or kids
                tier = min(ok, key=lambda k: (counts.get(k, 0) >= bound[k], fill(k), counts.get(k, 0)))
            dev_id = tier[3]
            rows[r][part] = dev_id
            for t in self._tiers(self.devs[dev_id]):
                assigned[t] += 1
        # 6. bookkeeping
        moved_parts = 0
        for part in range(self.parts):
            for r, row in enumerate(rows):
                old = before[r][part] if r < len(before) and part < len(before[r]) else NONE_DEV
                if part < len(row) and row[part] != old:
                    moved_parts += 1
                    self.last_part_moves[part] = 0
                    break
        removed = 0
        for dev_id in self.remove_devs:
            self.devs[dev_id] = None
            removed += 1
        self.remove_devs = []
        while self.devs and self.devs[-1] is None:
            self.devs.pop()
        self.devs_changed = False
        self.version += 1
        self.dispersion = self.get_dispersion()
        return moved_parts, self.get_balance(), removed


def _norm_ip(ip: str) -> str:
    return ip.strip("[]").lower()


# ---------------------------------------------------------------------------- reader
class Ring:
    """A ring file, read-only: partition -> devices, plus handoffs. Reloads when the file changes."""

    def __init__(self, path, *, hash_path_prefix: str | bytes = b"", hash_path_suffix: str | bytes = b"",
                 reload_time: float = 15.0):
        self.path = Path(path)
        self.prefix, self.suffix = hash_path_prefix, hash_path_suffix
        self.reload_time = reload_time
        self._mtime = None
        self._checked = 0.0
        self._load()

    def _load(self) -> None:
        try:
            raw = gzip.decompress(self.path.read_bytes())
            data = json.loads(raw)
            if data.get("format") != RING_FORMAT:
                raise ValueError("not a pocketstack ring file")
        except FileNotFoundError:
            raise RingError(f"ring file does not exist: {self.path}") from None
        except (OSError, ValueError, EOFError) as exc:
            raise RingError(f"cannot read ring file {self.path}: {exc}") from None
        self.version = data["version"]
        self.part_shift = data["part_shift"]
        self.devs = data["devs"]
        self.rows = [_decode_array("H", r) for r in data["replica2part2dev"]]
        self._mtime = self.path.stat().st_mtime
        self._checked = time.monotonic()
        self._regions = {d["region"] for d in self.devs if d}
        self._zones = {(d["region"], d["zone"]) for d in self.devs if d}
        self._servers = {(d["region"], d["zone"], d["ip"]) for d in self.devs if d}

    def _maybe_reload(self) -> None:
        if time.monotonic() - self._checked >= self.reload_time:
            self._checked = time.monotonic()
            try:
                if self.path.stat().st_mtime != self._mtime:
                    self._load()
            except OSError:
                pass

    @property
    def partition_count(self) -> int:
        return len(self.rows[0]) if self.rows else 0

    @property
    def replica_count(self) -> float:
        return sum(len(r) for r in self.rows) / max(1, self.partition_count)

    def get_part(self, account: str, container: str | None = None, obj: str | None = None) -> int:
        digest = hash_path(account, container, obj, prefix=self.prefix, suffix=self.suffix, raw=True)
        return struct.unpack_from(">I", digest)[0] >> self.part_shift

    def get_part_nodes(self, part: int) -> list[dict]:
        self._maybe_reload()
        seen, out = set(), []
        for row in self.rows:
            if part < len(row):
                dev_id = row[part]
                if dev_id != NONE_DEV and dev_id not in seen and self.devs[dev_id] is not None:
                    seen.add(dev_id)
                    out.append(dict(self.devs[dev_id], index=len(out)))
        return out

    def get_nodes(self, account: str, container: str | None = None, obj: str | None = None):
        part = self.get_part(account, container, obj)
        return part, self.get_part_nodes(part)

    def get_more_nodes(self, part: int):
        """Handoff devices for a partition: new regions first, then new zones, new servers, the rest;
        a stable pseudo-random order per partition."""
        self._maybe_reload()
        primaries = self.get_part_nodes(part)
        used_ids = {d["id"] for d in primaries}
        regions = {d["region"] for d in primaries}
        zones = {(d["region"], d["zone"]) for d in primaries}
        servers = {(d["region"], d["zone"], d["ip"]) for d in primaries}
        candidates = [d for d in self.devs if d is not None and d["id"] not in used_ids and d["weight"] > 0]
        candidates.sort(key=lambda d: hashlib.md5(f"{part}/{d['id']}".encode(), usedforsecurity=False).digest())
        while candidates:
            def novelty(d):
                return (d["region"] in regions, (d["region"], d["zone"]) in zones,
                        (d["region"], d["zone"], d["ip"]) in servers)
            best = min(candidates, key=novelty)  # min keeps the hash order among equals
            candidates.remove(best)
            regions.add(best["region"])
            zones.add((best["region"], best["zone"]))
            servers.add((best["region"], best["zone"], best["ip"]))
            yield dict(best, handoff_index=len(used_ids))
            used_ids.add(best["id"])


# ---------------------------------------------------------------------------- device strings
_SEARCH_RE = re.compile(
    r"^(?:d(?P<id>\d+))?(?:r(?P<region>\d+))?(?:z(?P<zone>\d+))?"
    r"(?:-?(?P<ip>\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:.]+\]))?(?::(?P<port>\d+))?"
    r"(?:R(?P<replication_ip>\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:.]+\]))?(?::(?P<replication_port>\d+))?"
    r"(?:/(?P<device>[^_]+))?(?:_(?P<meta>.*))?$")


def parse_search_value(value: str) -> dict:
    """`d0r1z1-10.0.0.1:6200R10.0.1.1:6205/sdb1_meta` (any subset, in this order) -> criteria."""
    m = _SEARCH_RE.match(value)
    if not value or not m or not any(m.groupdict().values()):
        raise RingError(f"Invalid <search-value>: {value!r}")
    out = {}
    for key, val in m.groupdict().items():
        if val is None:
            continue
        if key in ("id", "region", "zone", "port", "replication_port"):
            out[key] = int(val)
        elif key in ("ip", "replication_ip"):
            out[key] = val.strip("[]")
        else:
            out[key] = val
    return out


_ADD_RE = re.compile(
    r"^(?:r(?P<region>\d+))?z(?P<zone>\d+)-(?P<ip>\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+?)"
    r":(?P<port>\d+)(?:R(?P<replication_ip>\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+?)"
    r":(?P<replication_port>\d+))?/(?P<device>[^_\s]+)(?:_(?P<meta>.*))?$")


def parse_add_value(value: str) -> dict:
    """`[r<region>]z<zone>-<ip>:<port>[R<repl_ip>:<repl_port>]/<device>[_<meta>]` -> device fields."""
    m = _ADD_RE.match(value)
    if not m:
        raise RingError(f"Invalid add value: {value}")
    dev = {k: v for k, v in m.groupdict().items() if v is not None}
    for key in ("region", "zone", "port", "replication_port"):
        if key in dev:
            dev[key] = int(dev[key])
    for key in ("ip", "replication_ip"):
        if key in dev:
            dev[key] = dev[key].strip("[]")
    return dev
