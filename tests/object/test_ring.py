"""The ring: `pocketstack ring` as the guide drives swift-ring-builder, then the builder's properties."""
from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import pytest

from pocketstack.object.ring import NONE_DEV, Ring, RingBuilder, hash_path, parse_add_value

POCKETSTACK = str(Path(sys.executable).parent / "pocketstack")


def ring_cmd(builder: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([POCKETSTACK, "ring", builder.name, *map(str, args)], capture_output=True, text=True,
                          timeout=60, cwd=builder.parent)


def dev(zone: int, name: str, weight: float = 100, region: int = 1, ip: str | None = None) -> dict:
    return {"region": region, "zone": zone, "ip": ip or f"10.{region}.{zone}.1", "port": 6200, "device": name,
            "weight": weight}


def builder(devs, part_power=10, replicas=3, min_part_hours=1) -> RingBuilder:
    b = RingBuilder(part_power, replicas, min_part_hours)
    for d in devs:
        b.add_dev(d)
    return b


def snapshot(b: RingBuilder) -> list[list[int]]:
    return [list(r) for r in b.rows]


def part_devs(b: RingBuilder, part: int) -> list[int]:
    return [row[part] for row in b.rows if part < len(row)]


# ---------------------------------------------------------------------------- the CLI, as in the guide
def test_guide_flow(tmp_path):
    ob = tmp_path / "object.builder"
    assert ring_cmd(ob, "create", 10, 3, 1).returncode == 0
    out = ring_cmd(ob, "add", "z1-10.0.0.51:6200/sdb", 100)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'Device d0r1z1-10.0.0.51:6200R10.0.0.51:6200/sdb_"" with 100.0 weight got id 0'
    out = ring_cmd(ob, "add", "r1z2-10.0.0.52:6200R10.0.1.52:6300/sdb", 100)
    assert "d1r1z2-10.0.0.52:6200R10.0.1.52:6300/sdb" in out.stdout
    out = ring_cmd(ob, "add", "--region", 1, "--zone", 3, "--ip", "10.0.0.53", "--port", 6200,
                   "--device", "sdb", "--weight", 100)
    assert "got id 2" in out.stdout, out.stderr
    before = ring_cmd(ob).stdout
    assert "1024 partitions, 3.000000 replicas, 1 regions, 3 zones, 3 devices, 100.00 balance" in before
    assert "not found" in before and "-100.00" in before
    out = ring_cmd(ob, "rebalance")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Reassigned 1024 (100.00%) partitions. Balance is now 0.00.")
    assert (tmp_path / "object.ring.gz").exists()
    summary = ring_cmd(ob).stdout.splitlines()
    assert summary[0].startswith("object.builder, build version 4, id ")
    assert summary[1] == ("1024 partitions, 3.000000 replicas, 1 regions, 3 zones, 3 devices, "
                          "0.00 balance, 0.00 dispersion")
    assert summary[2].startswith("The minimum number of hours before a partition can be reassigned is 1 (")
    assert "Ring file object.ring.gz is up-to-date" in summary
    table = summary[summary.index(next(s for s in summary if s.startswith("Devices:"))) + 1:]
    assert len(table) == 3
    for line in table:
        cols = line.split()
        assert cols[5:9] == ["sdb", "100.00", "1024", "0.00"]
    assert "10.0.1.52:6300" in table[1]
    # within min_part_hours nothing more moves: a warning, exit 1, as upstream
    out = ring_cmd(ob, "rebalance")
    assert out.returncode == 1 and out.stdout.startswith("No partitions could be reassigned.")
    ring = Ring(tmp_path / "object.ring.gz")
    part, nodes = ring.get_nodes("AUTH_test", "c", "o")
    assert 0 <= part < 1024 and sorted(n["zone"] for n in nodes) == [1, 2, 3]


def test_cli_changes_and_errors(tmp_path):
    ob = tmp_path / "object.builder"
    ring_cmd(ob, "create", 8, 3, 0)
    for z in (1, 2, 3, 4):
        ring_cmd(ob, "add", f"z{z}-10.0.0.{z}:6200/sdb1", 100)
    assert ring_cmd(ob, "rebalance").returncode == 0
    out = ring_cmd(ob, "set_weight", "d3", 50)
    assert out.stdout.strip() == 'd3r1z4-10.0.0.4:6200R10.0.0.4:6200/sdb1_"" weight set to 50.0'
    out = ring_cmd(ob, "remove", "z4-10.0.0.4:6200/sdb1")
    assert "marked for removal and will be removed next rebalance." in out.stdout
    assert " DEL " in ring_cmd(ob).stdout
    out = ring_cmd(ob, "rebalance")
    assert out.returncode == 0 and "Reassigned" in out.stdout
    assert "3 zones, 3 devices, 0.00 balance" in ring_cmd(ob).stdout
    for args, fragment in [(("add", "z1-10.0.0.1:6200/sdb1", 100), "already uses"),
                           (("add", "bogus", 100), "Invalid add value"),
                           (("remove", "d42"), "matched 0 devices"),
                           (("remove", "r1"), "matched 3 devices"),
                           (("frobnicate",), "unknown ring command"),
                           (("create", 10, "x", 1), "replicas must be a number"),
                           (("set_weight", "d0", "-1"), "weight must not be negative")]:
        res = ring_cmd(ob, *args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pocketstack: error:") and fragment in lines[0], lines
    res = ring_cmd(tmp_path / "missing.builder")
    assert res.returncode == 2 and "does not exist" in res.stderr


def test_add_value_forms():
    assert parse_add_value("z1-10.0.0.1:6002R10.0.1.1:6005/sdb1") == {
        "zone": 1, "ip": "10.0.0.1", "port": 6002, "replication_ip": "10.0.1.1", "replication_port": 6005,
        "device": "sdb1"}
    assert parse_add_value("r2z3-[::1]:6200/d1_fast")["ip"] == "::1"
    assert parse_add_value("r2z3-[::1]:6200/d1_fast")["meta"] == "fast"


# ---------------------------------------------------------------------------- placement properties
def test_distinct_devices_and_zones_balanced():
    b = builder([dev(z, f"sd{i}") for z in (1, 2, 3, 4) for i in "ab"])
    moved, balance, _ = b.rebalance(seed=7)
    assert moved == 1024 and balance < 1
    for part in range(b.parts):
        ds = part_devs(b, part)
        assert NONE_DEV not in ds and len(set(ds)) == 3
        assert len({b.devs[d]["zone"] for d in ds}) == 3
    assert b.dispersion == 0


def test_servers_spread_within_one_zone():
    b = builder([dev(1, f"sd{i}", ip=f"10.0.0.{s}") for s in (1, 2, 3) for i in "ab"])
    b.rebalance()
    assert all(len({b.devs[d]["ip"] for d in part_devs(b, p)}) == 3 for p in range(b.parts))
    assert b.get_balance() < 1


def test_weights_respected():
    b = builder([dev(z, "sdb") for z in range(1, 7)] + [dev(7, "sdb", weight=200)])
    b.rebalance()
    counts = b.dev_parts()
    assert counts[6] == pytest.approx(2 * counts[0], rel=0.02)
    assert counts[6] == pytest.approx(3 * 1024 * 200 / 800, abs=2)
    assert b.get_balance() < 1


def test_adding_a_device_moves_the_minimum_once_per_min_part_hours():
    b = builder([dev(z, "sdb") for z in (1, 2, 3)])
    b.rebalance()
    b.pretend_min_part_hours_passed()
    old = snapshot(b)
    b.add_dev(dev(4, "sdb"))
    moved, balance, _ = b.rebalance()
    changed = [sum(old[r][p] != b.rows[r][p] for r in range(3)) for p in range(b.parts)]
    assert max(changed) == 1                     # never two replicas of one partition at once
    assert sum(changed) == pytest.approx(1024 * 3 / 4, abs=8)
    assert moved == sum(1 for c in changed if c) and balance < 1
    # the moved partitions went to the new device only
    assert all(b.rows[r][p] == 3 for p in range(b.parts) for r in range(3) if old[r][p] != b.rows[r][p])
    # within min_part_hours a partition just moved does not move again (the others still may)
    just_moved = {p for p in range(b.parts) if changed[p]}
    b.add_dev(dev(5, "sdb"))
    old = snapshot(b)
    b.rebalance()
    assert not {p for p in range(b.parts) if any(old[r][p] != b.rows[r][p] for r in range(3))} & just_moved
    assert b.rebalance()[0] == 0                 # nothing left that may and should move
    # once the hours have passed, a rebalance does move again, still one replica per partition
    old = snapshot(b)
    moved, _, _ = b.rebalance(now=b.last_part_moves_epoch + 3601)
    assert moved > 0
    assert max(sum(old[r][p] != b.rows[r][p] for r in range(3)) for p in range(b.parts)) == 1


def test_removing_a_device_reassigns_only_its_partitions():
    b = builder([dev(z, "sdb") for z in range(1, 6)])
    b.rebalance()
    old = snapshot(b)
    b.remove_dev(4)                              # allowed even within min_part_hours
    moved, balance, removed = b.rebalance()
    assert removed == 1 and b.devs[-1]["id"] == 3 and balance < 1
    for r in range(3):
        for p in range(b.parts):
            if old[r][p] != 4:
                assert b.rows[r][p] == old[r][p]
            else:
                assert b.rows[r][p] != 4
    assert moved == sum(1 for p in range(b.parts) if 4 in [old[r][p] for r in range(3)])
    assert all(len({b.devs[d]["zone"] for d in part_devs(b, p)}) == 3 for p in range(b.parts))


def test_set_weight_zero_drains():
    b = builder([dev(z, "sdb") for z in range(1, 5)], min_part_hours=0)
    b.rebalance()
    b.set_dev_weight(0, 0)
    b.rebalance()
    assert b.dev_parts()[0] == 0 and b.get_balance() < 1


def test_two_regions():
    b = builder([dev(z, "sdb", region=r) for r in (1, 2) for z in (1, 2)])
    b.rebalance()
    for p in range(b.parts):
        regions = collections.Counter(b.devs[d]["region"] for d in part_devs(b, p))
        assert sorted(regions.values()) == [1, 2]       # both regions hold every partition
    assert b.get_balance() < 1 and b.dispersion == 0
    # a small second region takes its weight's share and never two replicas of one partition
    b = builder([dev(z, "sdb") for z in (1, 2, 3)] + [dev(1, "sdb", region=2, weight=100)])
    b.rebalance()
    assert b.dev_parts()[3] == pytest.approx(768, abs=2)
    assert all(sum(b.devs[d]["region"] == 2 for d in part_devs(b, p)) <= 1 for p in range(b.parts))


def test_fractional_replicas_and_few_devices():
    b = builder([dev(z, "sdb") for z in (1, 2, 3)], replicas=2.5)
    b.rebalance()
    assert [len(r) for r in b.rows] == [1024, 1024, 512]
    assert sum(b.dev_parts().values()) == 2560 and b.get_balance() < 1
    one = builder([dev(1, "sdb")], replicas=1)
    one.rebalance()
    assert one.dev_parts() == {0: 1024}


def test_builder_file_roundtrip(tmp_path):
    b = builder([dev(z, "sdb") for z in (1, 2, 3)])
    b.rebalance()
    b.save(tmp_path / "x.builder")
    again = RingBuilder.load(tmp_path / "x.builder")
    assert snapshot(again) == snapshot(b) and again.devs == b.devs and again.version == b.version
    assert list(again.last_part_moves) == list(b.last_part_moves)
    assert not list(tmp_path.glob(".*tmp"))


# ---------------------------------------------------------------------------- the reader
@pytest.fixture()
def ring(tmp_path) -> Ring:
    b = builder([dev(z, f"sd{i}") for z in (1, 2, 3, 4) for i in "ab"])
    b.rebalance()
    b.write_ring(tmp_path / "object.ring.gz")
    return Ring(tmp_path / "object.ring.gz", hash_path_suffix="changeme")


def test_get_nodes_deterministic_and_even(ring, tmp_path):
    part, nodes = ring.get_nodes("AUTH_a", "c", "o")
    assert (part, nodes) == ring.get_nodes("AUTH_a", "c", "o")
    assert len(nodes) == 3 and len({n["id"] for n in nodes}) == 3
    digest = hash_path("AUTH_a", "c", "o", suffix="changeme", raw=True)
    assert part == int.from_bytes(digest[:4], "big") >> (32 - 10)
    assert hash_path("AUTH_a", "c", "o", suffix="changeme") == digest.hex()
    other = Ring(tmp_path / "object.ring.gz", hash_path_prefix="p", hash_path_suffix="changeme")
    assert sum(other.get_part("AUTH_a", "c", f"o{i}") != ring.get_part("AUTH_a", "c", f"o{i}")
               for i in range(50)) > 40
    per_dev = collections.Counter()
    for i in range(24000):
        _, nodes = ring.get_nodes("AUTH_a", "c", f"obj-{i}")
        per_dev.update(n["id"] for n in nodes)
    assert len(per_dev) == 8
    assert max(per_dev.values()) / min(per_dev.values()) < 1.1      # 9000 each, within a few %
    assert ring.get_part("AUTH_a") != ring.get_part("AUTH_b")
    with pytest.raises(ValueError):
        hash_path("AUTH_a", None, "o")


def test_handoffs(ring):
    part, nodes = ring.get_nodes("AUTH_a", "c", "o")
    handoffs = list(ring.get_more_nodes(part))
    assert len(handoffs) == 5 and not {h["id"] for h in handoffs} & {n["id"] for n in nodes}
    used_zones = {n["zone"] for n in nodes}
    assert handoffs[0]["zone"] not in used_zones           # a new zone first
    assert handoffs == list(ring.get_more_nodes(part))
