"""`pocketstack ring BUILDER_FILE [VERB ...]`: the install guide's `swift-ring-builder`, same verbs and output.

Verbs: (none) summary, create, add, remove, set_weight, rebalance, write_ring, search,
set_min_part_hours, set_replicas, pretend_min_part_hours_passed. Errors raise `UserError`
(one `pocketstack: error:` line, exit 2); "nothing to do" warnings exit 1 as upstream does.
"""
from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from pocketstack.object.ring import (
    MAX_BALANCE, RingBuilder, RingError, format_device, parse_add_value, parse_search_value)

VERBS = ("create", "add", "remove", "set_weight", "rebalance", "write_ring", "search",
         "set_min_part_hours", "set_replicas", "pretend_min_part_hours_passed")

USAGE = """usage: pocketstack ring BUILDER_FILE [VERB ...]
  (no verb)                                      summary and device table
  create <part_power> <replicas> <min_part_hours>
  add [r<region>]z<zone>-<ip>:<port>[R<repl_ip>:<repl_port>]/<device>[_<meta>] <weight> [...]
  add --region R --zone Z --ip IP --port P [--replication-ip IP --replication-port P] --device D --weight W
  remove <search-value> [--yes]                  e.g. d3, z1-10.0.0.1:6200/sdb1, r1z2
  set_weight <search-value> <weight> [--yes]
  rebalance [--seed N] [--force]                 also writes <name>.ring.gz
  write_ring | search <search-value> | set_min_part_hours <hours> | set_replicas <replicas>
  pretend_min_part_hours_passed"""


def _user_error(message: str):
    from pocketstack.cli import UserError

    return UserError(message)


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise _user_error(f"{self.prog}: {message}")


def ring_file_for(builder_path: Path) -> Path:
    name = builder_path.name
    stem = name[: -len(".builder")] if name.endswith(".builder") else name
    return builder_path.with_name(stem + ".ring.gz")


def run(builder_file: str, argv: list[str]) -> int:
    path = Path(builder_file)
    try:
        if not argv:
            return _summary(path, builder_file)
        verb, args = argv[0], argv[1:]
        if verb in ("-h", "--help", "help"):
            print(USAGE)
            return 0
        if verb not in VERBS:
            raise _user_error(f"unknown ring command {verb!r} (choose from {', '.join(VERBS)})")
        return globals()["_verb_" + verb](path, args)
    except RingError as exc:
        raise _user_error(str(exc)) from None


def _load(path: Path) -> RingBuilder:
    return RingBuilder.load(path)


def _float(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise _user_error(f"{what} must be a number, not {value!r}") from None


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _user_error(f"{what} must be an integer, not {value!r}") from None


# ---------------------------------------------------------------------------- summary
def _summary(path: Path, shown: str) -> int:
    b = _load(path)
    devs = b.active_devs
    regions = len({d["region"] for d in devs})
    zones = len({(d["region"], d["zone"]) for d in devs})
    balance = b.get_balance() if devs else 0.0
    print(f"{shown}, build version {b.version}, id {b.id}")
    print(f"{b.parts} partitions, {b.replicas:.6f} replicas, {regions} regions, {zones} zones, "
          f"{len(devs)} devices, {balance:.2f} balance, {b.dispersion:.2f} dispersion")
    left = datetime.timedelta(seconds=b.min_part_seconds_left())
    print(f"The minimum number of hours before a partition can be reassigned is {b.min_part_hours} "
          f"({left} remaining)")
    print(f"The overload factor is {b.overload * 100:.2f}% ({b.overload:.6f})")
    ring_file = ring_file_for(path)
    status = _ring_status(b, ring_file)
    print(f"Ring file {ring_file.name if str(path) == path.name else ring_file} {status}")
    if devs:
        _print_devs(b, devs)
    return 0


def _ring_status(b: RingBuilder, ring_file: Path) -> str:
    import gzip
    import json

    try:
        data = json.loads(gzip.decompress(ring_file.read_bytes()))
    except FileNotFoundError:
        return "not found, probably it hasn't been written yet"
    except (OSError, ValueError, EOFError):
        return "is invalid"
    if data.get("id") == b.id and data.get("version") == b.version:
        return "is up-to-date"
    return "is obsolete"


def _print_devs(b: RingBuilder, devs: list[dict]) -> None:
    wanted, counts = b.parts_wanted(), b.dev_parts()
    header = ["id", "region", "zone", "ip address:port", "replication ip:port", "name", "weight",
              "partitions", "balance", "flags", "meta"]
    rows = []
    for d in devs:
        bal = b.dev_balance(d, wanted, counts)
        if b.rows is None and d["weight"] > 0:
            bal = -100.0
        rows.append([str(d["id"]), str(d["region"]), str(d["zone"]),
                     f"{_ip(d['ip'])}:{d['port']}", f"{_ip(d['replication_ip'])}:{d['replication_port']}",
                     d["device"], f"{d['weight']:.2f}", str(counts.get(d["id"], 0)),
                     f"{min(bal, MAX_BALANCE):.2f}", "DEL" if d["id"] in b.remove_devs else "", d["meta"]])
    minimum = {0: 4, 5: 5}
    widths = [max(len(h), minimum.get(i, 0), *(len(r[i]) for r in rows)) for i, h in enumerate(header[:-1])]
    print("Devices:" + " " + " ".join(h.rjust(w) for h, w in zip(header, widths)) + " meta")
    for r in rows:
        print(" " * 8 + " " + " ".join(c.rjust(w) for c, w in zip(r, widths)) + " " + r[-1])


def _ip(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


# ---------------------------------------------------------------------------- verbs
def _verb_create(path: Path, args: list[str]) -> int:
    if len(args) != 3:
        raise _user_error("usage: pocketstack ring BUILDER_FILE create <part_power> <replicas> <min_part_hours>")
    part_power = _int(args[0], "part_power")
    replicas = _float(args[1], "replicas")
    hours = _int(args[2], "min_part_hours")
    if part_power > 23:
        raise _user_error("part_power must be at most 23 here (8 million partitions)")
    b = RingBuilder(part_power, replicas, hours)
    path.parent.mkdir(parents=True, exist_ok=True)
    b.save(path)
    return 0


def _verb_add(path: Path, args: list[str]) -> int:
    b = _load(path)
    new_devs = []
    if args and args[0].startswith("-"):
        p = _ArgParser(prog="pocketstack ring BUILDER_FILE add", add_help=False)
        p.add_argument("-r", "--region", type=int, default=1)
        p.add_argument("-z", "--zone", type=int, required=True)
        p.add_argument("-i", "--ip", required=True)
        p.add_argument("-p", "--port", type=int, required=True)
        p.add_argument("-j", "--replication-ip")
        p.add_argument("-q", "--replication-port", type=int)
        p.add_argument("-d", "--device", required=True)
        p.add_argument("-m", "--meta", default="")
        p.add_argument("-w", "--weight", type=float, required=True)
        ns = p.parse_args(args)
        new_devs.append({"region": ns.region, "zone": ns.zone, "ip": ns.ip.strip("[]"), "port": ns.port,
                         "replication_ip": (ns.replication_ip or "").strip("[]") or None,
                         "replication_port": ns.replication_port, "device": ns.device, "meta": ns.meta,
                         "weight": ns.weight})
    else:
        if not args or len(args) % 2:
            raise _user_error("usage: pocketstack ring BUILDER_FILE add "
                              "[r<region>]z<zone>-<ip>:<port>[R<r_ip>:<r_port>]/<device_name>_<meta> <weight> "
                              "[...] (or --region --zone --ip --port --device --weight)")
        for i in range(0, len(args), 2):
            dev = parse_add_value(args[i])
            dev["weight"] = _float(args[i + 1], "weight")
            new_devs.append(dev)
    for dev in new_devs:
        if dev["weight"] < 0:
            raise _user_error("weight must not be negative")
        dev_id = b.add_dev(dev)
        added = b.devs[dev_id]
        print(f"Device {format_device(added)} with {added['weight']} weight got id {dev_id}")
    b.save(path)
    return 0


def _pairs_or_flags(args: list[str], verb: str, with_value: bool):
    yes = False
    rest = []
    for a in args:
        if a in ("-y", "--yes"):
            yes = True
        else:
            rest.append(a)
    if with_value:
        if not rest or len(rest) % 2:
            raise _user_error(f"usage: pocketstack ring BUILDER_FILE {verb} <search-value> <weight> [...]")
        return [(rest[i], rest[i + 1]) for i in range(0, len(rest), 2)], yes
    if not rest:
        raise _user_error(f"usage: pocketstack ring BUILDER_FILE {verb} <search-value> [...]")
    return [(s, None) for s in rest], yes


def _match(b: RingBuilder, search: str, yes: bool, verb: str) -> list[dict]:
    devs = b.search_devs(parse_search_value(search))
    if not devs:
        raise _user_error(f"Search value {search!r} matched 0 devices.")
    if len(devs) > 1 and not yes:
        raise _user_error(f"Search value {search!r} matched {len(devs)} devices "
                          f"({', '.join(format_device(d) for d in devs)}); add --yes to {verb} them all")
    return devs


def _verb_remove(path: Path, args: list[str]) -> int:
    b = _load(path)
    pairs, yes = _pairs_or_flags(args, "remove", False)
    for search, _ in pairs:
        for dev in _match(b, search, yes, "remove"):
            b.remove_dev(dev["id"])
            print(f"{format_device(dev)} marked for removal and will be removed next rebalance.")
    b.save(path)
    return 0


def _verb_set_weight(path: Path, args: list[str]) -> int:
    b = _load(path)
    pairs, yes = _pairs_or_flags(args, "set_weight", True)
    for search, weight in pairs:
        value = _float(weight, "weight")
        for dev in _match(b, search, yes, "set_weight"):
            b.set_dev_weight(dev["id"], value)
            print(f"{format_device(dev)} weight set to {dev['weight']}")
    b.save(path)
    return 0


def _verb_search(path: Path, args: list[str]) -> int:
    b = _load(path)
    if len(args) != 1:
        raise _user_error("usage: pocketstack ring BUILDER_FILE search <search-value>")
    devs = b.search_devs(parse_search_value(args[0]))
    if not devs:
        print("No matching devices found")
        return 2
    _print_devs(b, devs)
    return 0


def _verb_rebalance(path: Path, args: list[str]) -> int:
    p = _ArgParser(prog="pocketstack ring BUILDER_FILE rebalance", add_help=False)
    p.add_argument("-s", "--seed", type=int)
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("seed_pos", nargs="?", type=int)
    ns = p.parse_args(args)
    seed = ns.seed if ns.seed is not None else ns.seed_pos
    b = _load(path)
    devs_changed = b.devs_changed
    if not b.active_devs:
        raise _user_error("Unable to rebalance: no devices")
    before_version = b.version
    moved, balance, removed = b.rebalance(seed=seed)
    if not (moved or devs_changed or removed or ns.force):
        b.version = before_version
        print("No partitions could be reassigned.")
        left = b.min_part_seconds_left()
        if left > 0:
            print(f"The time between rebalances must be at least min_part_hours: {b.min_part_hours} hours "
                  f"({datetime.timedelta(seconds=left)} remaining)")
        else:
            print("There is no need to do so at this time")
        return 1
    b.save(path)
    b.write_ring(ring_file_for(path))
    print(f"Reassigned {moved} ({100.0 * moved / b.parts:.2f}%) partitions. Balance is now {balance:.2f}.  "
          f"Dispersion is now {b.dispersion:.2f}")
    if balance > 5 and b.min_part_hours:
        print("-" * 79)
        print(f"NOTE: Balance of {balance:.2f} indicates you should push this ")
        print(f"      ring, wait at least {b.min_part_hours} hours, and rebalance/repush.")
        print("-" * 79)
    return 0


def _verb_write_ring(path: Path, args: list[str]) -> int:
    b = _load(path)
    if b.rows is None:
        raise _user_error("the ring has no partitions assigned yet; run rebalance first")
    b.write_ring(ring_file_for(path))
    return 0


def _verb_set_min_part_hours(path: Path, args: list[str]) -> int:
    if len(args) != 1:
        raise _user_error("usage: pocketstack ring BUILDER_FILE set_min_part_hours <hours>")
    b = _load(path)
    hours = _int(args[0], "hours")
    if not 0 <= hours <= 255:
        raise _user_error("hours must be between 0 and 255")
    b.min_part_hours = hours
    b.save(path)
    print(f"The minimum number of hours before a partition can be reassigned is now set to {hours}")
    return 0


def _verb_set_replicas(path: Path, args: list[str]) -> int:
    if len(args) != 1:
        raise _user_error("usage: pocketstack ring BUILDER_FILE set_replicas <replicas>")
    b = _load(path)
    replicas = _float(args[0], "replicas")
    if replicas < 1:
        raise _user_error("replicas must be at least 1")
    b.replicas = replicas
    b.devs_changed = True
    b.version += 1
    b.save(path)
    print(f"The replica count is now {replicas:.6f}.")
    print("The change will take effect after the next rebalance.")
    return 0


def _verb_pretend_min_part_hours_passed(path: Path, args: list[str]) -> int:
    b = _load(path)
    b.pretend_min_part_hours_passed()
    b.save(path)
    return 0
