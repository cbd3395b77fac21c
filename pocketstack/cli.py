"""The `pocketstack` command: up, init, db upgrade, token-keys rotate, config get|set.

User mistakes print one clear line (`pocketstack: error: ...`) and exit 2; nothing
prints a traceback unless `POCKETSTACK_DEBUG=1`.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from pocketstack import __version__
from pocketstack.common.config import DEFAULTS, UP_OPTIONS, Config, ConfigError


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`pocketstack: error: ...`), like every other."""

    def error(self, message: str):
        self.exit(2, f"pocketstack: error: {message} (see '{self.prog} --help')\n")


def _usage(parser: argparse.ArgumentParser, *command: str) -> int:
    """A command given without its action: show that command's help, exit 2."""
    try:
        parser.parse_args([*command, "--help"])
    except SystemExit:
        pass
    return 2


def _state_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", metavar="DIR",
                   help="where config, database, keys and logs live "
                        "(env POCKETSTACK_STATE_DIR, default ~/.local/share/pocketstack)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pocketstack",
                     description="The OpenStack cloud on one machine, in seconds.")
    parser.add_argument("--version", action="version", version=f"pocketstack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("up", help="initialise on first run, then serve every enabled service",
                        description="Initialise the state dir if needed (schema, keys, bootstrap), then "
                                    "serve every enabled service on one port until Ctrl-C or SIGTERM.")
    _state_dir_arg(up)
    up.add_argument("--host", help="address to listen on (env POCKETSTACK_HOST, default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (env POCKETSTACK_PORT, default 5000)")
    up.add_argument("--admin-password", help="admin password (env POCKETSTACK_ADMIN_PASSWORD; "
                                             "default: a random one kept in the state dir)")
    up.add_argument("--db-url", help="database URL (env POCKETSTACK_DB_URL; default SQLite in the state dir; "
                                     "postgresql://... and mysql+pymysql://... work too)")
    up.add_argument("--region", help="region name (env POCKETSTACK_REGION, default RegionOne)")
    up.add_argument("--public-url", help="base URL clients use, if not http://HOST:PORT "
                                         "(env POCKETSTACK_PUBLIC_URL)")
    up.add_argument("--workers", type=int, help="server processes (env POCKETSTACK_WORKERS, default 1)")
    up.add_argument("--fake-hosts", type=int, help="simulated compute hosts of the fake virt driver "
                    "(env POCKETSTACK_FAKE_HOSTS, default 1)")
    up.add_argument("--virt-driver", choices=("fake", "qemu"),
                    help="compute virt driver: fake (simulated hosts), or qemu (real instances on this machine; "
                         "needs root and qemu-system-x86_64) (env POCKETSTACK_VIRT_DRIVER, default fake)")
    up.add_argument("--network-backend", choices=("noop", "linuxbridge"),
                    help="network dataplane: noop, or linuxbridge (needs root; bridges, DHCP, NAT) "
                         "(env POCKETSTACK_NETWORK_BACKEND, default noop)")
    up.add_argument("--external-network", choices=("demo",),
                    help="demo: an external network `public` (172.24.4.0/24) whose gateway 172.24.4.1 lives in "
                         "the namespace pocketstack-outside (linuxbridge backend only; [network] external_network)")

    init = sub.add_parser("init", help="create or update the state dir without serving",
                          description="Create the schema, token keys, bootstrap data, catalog, "
                                      "clouds.yaml and openrc. Safe to run again.")
    _state_dir_arg(init)
    init.add_argument("--admin-password", help="admin password (env POCKETSTACK_ADMIN_PASSWORD)")
    init.add_argument("--db-url", help="database URL (env POCKETSTACK_DB_URL)")

    dbp = sub.add_parser("db", help="database schema commands")
    dbsub = dbp.add_subparsers(dest="db_command", metavar="ACTION")
    dbup = dbsub.add_parser("upgrade", help="migrate every service's schema to the newest version (Alembic)")
    _state_dir_arg(dbup)
    dbup.add_argument("--db-url", help="database URL (env POCKETSTACK_DB_URL)")
    dbver = dbsub.add_parser("version", help="show each service's schema version")
    _state_dir_arg(dbver)
    dbver.add_argument("--db-url", help="database URL (env POCKETSTACK_DB_URL)")

    tk = sub.add_parser("token-keys", help="Fernet token key commands")
    tksub = tk.add_subparsers(dest="tk_command", metavar="ACTION")
    rot = tksub.add_parser("rotate", help="promote the staged key, stage a new one, prune the oldest")
    _state_dir_arg(rot)

    cfg = sub.add_parser("config", help="read or write the state dir's config file",
                         description="Read or write pocketstack.conf with upstream's section and key names, "
                                     "as the install guide does with openstack-config.")
    cfgsub = cfg.add_subparsers(dest="cfg_command", metavar="ACTION")
    get = cfgsub.add_parser("get", help="print one value")
    _state_dir_arg(get)
    get.add_argument("section")
    get.add_argument("key")
    setp = cfgsub.add_parser("set", help="write one value")
    _state_dir_arg(setp)
    setp.add_argument("section")
    setp.add_argument("key")
    setp.add_argument("value")

    ring = sub.add_parser("ring", help="build object-storage rings (the guide's swift-ring-builder)",
                          description="swift-ring-builder's verbs and output: create, add, remove, set_weight, "
                                      "rebalance, write_ring, search, ...; no verb prints the summary.")
    ring.add_argument("builder_file", metavar="BUILDER_FILE")
    ring.add_argument("verb", nargs=argparse.REMAINDER, metavar="VERB ...")

    obj = sub.add_parser("object", help="object storage maintenance: one replication or audit pass")
    objsub = obj.add_subparsers(dest="obj_command", metavar="ACTION")
    for name, text in (("replicate", "restore missing, corrupt or stale replicas (objects and listings) now"),
                       ("audit", "check every replica's checksum now and quarantine bad ones")):
        action = objsub.add_parser(name, help=text)
        _state_dir_arg(action)

    img = sub.add_parser("image", help="image helpers (the pocketstack-tiny test image)")
    imgsub = img.add_subparsers(dest="image_command", metavar="ACTION")
    tiny = imgsub.add_parser("build-tiny", help="build pocketstack-tiny from Debian packages (cached) and "
                                                "register it as a public image",
                             description="Build the CirrOS-like test image (docs/compute-qemu.md), cached under "
                                         "~/.cache/pocketstack, then upload it as the public image "
                                         "'pocketstack-tiny' into the state dir's cloud (kept if already there).")
    _state_dir_arg(tiny)
    tiny.add_argument("--no-register", action="store_true", help="only build, print the image file")
    tiny.add_argument("--force", action="store_true", help="rebuild even when a cached build exists")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args, parser)
    except (UserError, ConfigError) as exc:
        print(f"pocketstack: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("POCKETSTACK_DEBUG"):
            raise
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            print(f"pocketstack: error: cannot use the database: {exc.orig}".splitlines()[0], file=sys.stderr)
            return 2
        print(f"pocketstack: error: {type(exc).__name__}: {exc} (set POCKETSTACK_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


# ---------------------------------------------------------------------------- commands
def _load(args) -> Config:
    cfg = Config.load(getattr(args, "state_dir", None))
    for name, (section, key) in UP_OPTIONS.items():
        value = getattr(args, name, None)
        if value is not None:
            cfg.override(section, key, str(value))
    if getattr(args, "admin_password", None):
        os.environ["POCKETSTACK_ADMIN_PASSWORD"] = args.admin_password
    return cfg


def _persist_choices(cfg: Config) -> None:
    """Flags given to `up`/`init` become the state dir's config, so later commands agree."""
    for (section, key), value in cfg.overrides.items():
        cfg.set(section, key, value)
    cfg.save()


def _remember_admin_password(cfg: Config, password: str) -> None:
    """An explicit --admin-password (or env) is now the admin's: keep it in the state dir, so a
    later plain `pocketstack up` shows it and writes it to clouds.yaml/openrc (not a new one)."""
    path = cfg.state_dir / "admin-password"
    if path.exists() and path.read_text().strip() == password:
        return
    tmp = path.with_name(".admin-password.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    os.replace(tmp, path)


def _runtime(cfg: Config, log_to_stderr: bool = True):
    from pocketstack import server

    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    server.setup_logging(cfg, to_stderr=log_to_stderr)
    return server, server.build_runtime(cfg)


def _check_port(host: str, port: int) -> None:
    """Fail before initialising (and before the banner) when the port is taken."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def cmd_init(args, parser) -> int:
    cfg = _load(args)
    server, rt = _runtime(cfg)
    explicit = bool(os.environ.get("POCKETSTACK_ADMIN_PASSWORD"))
    password = cfg.admin_password()
    result = server.initialise(rt, password, reset_password=explicit)
    _persist_choices(cfg)  # only once they proved usable: a bad --db-url must not stick
    _remember_admin_password(cfg, password)
    print(f"state dir: {cfg.state_dir}")
    if result.get("migrated"):
        print(f"schema migrated: {', '.join(result['migrated'])}")
    print(f"clouds.yaml: {cfg.state_dir / 'clouds.yaml'}  (OS_CLOUD=pocketstack)")
    print(f"openrc: {cfg.state_dir / 'openrc'}")
    return 0


def cmd_up(args, parser) -> int:
    started = time.perf_counter()
    cfg = _load(args)
    if getattr(args, "external_network", None):
        cfg.override("network", "external_network", args.external_network)
    _check_port(cfg.host, cfg.port)
    server, rt = _runtime(cfg)
    explicit = bool(os.environ.get("POCKETSTACK_ADMIN_PASSWORD"))
    password = cfg.admin_password()
    server.initialise(rt, password, reset_password=explicit)
    _persist_choices(cfg)  # only once they proved usable: a bad --db-url must not stick
    _remember_admin_password(cfg, password)
    app = server.create_app(rt)
    import uvicorn

    workers = cfg.getint("pocketstack", "workers") or 1
    print(f"pocketstack {__version__} serving {', '.join(cfg.enabled_services)}", flush=True)
    print(f"  URL:          {cfg.public_url}  (identity: {cfg.public_url}/v3)")
    print(f"  admin:        admin / {password}  (project admin, domain Default)")
    print(f"  clouds.yaml:  {cfg.state_dir / 'clouds.yaml'}  ->  export OS_CLOUD=pocketstack "
          f"OS_CLIENT_CONFIG_FILE={cfg.state_dir / 'clouds.yaml'}")
    print(f"  openrc:       source {cfg.state_dir / 'openrc'}")
    print(f"  state dir:    {cfg.state_dir}  (database {rt.db.engine.url.render_as_string(hide_password=True)})")
    from pocketstack.compute.service import banner_hint

    if banner_hint(cfg):
        print(banner_hint(cfg))
    if (cfg.get("network", "backend") or "noop") == "noop":
        print("  network:      no dataplane (noop); real networking as root: pocketstack up "
              "--network-backend linuxbridge --external-network demo (docs/network-dataplane.md)")
    print(f"  ready in {time.perf_counter() - started:.2f}s; Ctrl-C stops", flush=True)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler
    # that was installed before it ran: with the defaults that is a KeyboardInterrupt (exit 130)
    # or death by SIGTERM, skipping our own shutdown. A stop request is a clean exit here.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if workers > 1:
            os.environ["POCKETSTACK_STATE_DIR"] = str(cfg.state_dir)
            for name, (section, key) in UP_OPTIONS.items():
                if (section, key) in cfg.overrides:
                    os.environ["POCKETSTACK_" + name.upper()] = cfg.overrides[(section, key)]
            rt.db.dispose()
            uvicorn.run("pocketstack.server:worker_app", factory=True, host=cfg.host, port=cfg.port,
                        workers=workers, log_config=None, access_log=False, lifespan="off",
                        timeout_graceful_shutdown=5)
        else:
            config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_config=None, access_log=False,
                                    lifespan="off", timeout_graceful_shutdown=5)
            try:
                uvicorn.Server(config).run()
            except OSError as exc:
                raise UserError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}") from None
            except SystemExit as exc:  # uvicorn exits (code 3) when it cannot bind; it logged why
                if exc.code in (0, None):
                    raise
                raise UserError(f"cannot listen on {cfg.host}:{cfg.port}") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    rt.tasks.shutdown()
    print("pocketstack stopped", flush=True)
    return 0


def cmd_db(args, parser) -> int:
    cfg = _load(args)
    from pocketstack.common import db as dbmod

    database = dbmod.Database(cfg.db_url)
    if args.db_command == "upgrade":
        changed = dbmod.upgrade(database)
        print("upgraded: " + ", ".join(changed) if changed else "schema is up to date")
        return 0
    if args.db_command == "version":
        for service in dbmod.MIGRATING_SERVICES:
            print(f"{service}: {dbmod.current_revision(database, service) or 'none'} "
                  f"(head {dbmod.head_revision(service)})")
        return 0
    return _usage(parser, "db")


def cmd_token_keys(args, parser) -> int:
    if args.tk_command != "rotate":
        return _usage(parser, "token-keys")
    cfg = _load(args)
    from pocketstack.identity.fernet import KeyRepository

    repo = KeyRepository(cfg.state_dir / "fernet-keys", cfg.getint("fernet_tokens", "max_active_keys"))
    if not repo._keys():
        raise UserError(f"no token keys in {repo.path}; run 'pocketstack init' first")
    primary = repo.rotate()
    print(f"rotated: key {primary} is now primary; keys kept: "
          f"{', '.join(sorted(p.name for p in repo.path.iterdir() if p.name.isdigit()))}")
    return 0


def cmd_config(args, parser) -> int:
    if args.cfg_command not in ("get", "set"):
        return _usage(parser, "config")
    cfg = Config.load(args.state_dir)
    if args.cfg_command == "get":
        value = cfg.get(args.section, args.key, default=None)
        if value == "" and (args.section, args.key) not in DEFAULTS and not (
                cfg.parser.has_option(args.section, args.key) if args.section != "DEFAULT" else False):
            raise UserError(f"[{args.section}] {args.key} is not set")
        print(value)
        return 0
    cfg.set(args.section, args.key, args.value)
    cfg.save()
    print(f"[{args.section}] {args.key} = {args.value}  ({cfg.path})")
    return 0


def cmd_ring(args, parser) -> int:
    from pocketstack.object import ring_cli

    return ring_cli.run(args.builder_file, args.verb)


def cmd_object(args, parser) -> int:
    """One replicator or auditor pass over the state dir's devices (a running cloud's too)."""
    import json

    from pocketstack.object import auditor, replicator
    from pocketstack.object.service import open_storage

    if not getattr(args, "obj_command", None):
        return _usage(parser, "object")
    cfg = _load(args)
    if not (cfg.state_dir / "object" / "object.ring.gz").exists():
        raise UserError(f"no object storage in {cfg.state_dir} (start the cloud with the object service first)")
    storage = open_storage(cfg)
    with replicator.exclusive(storage):
        if args.obj_command == "audit":
            stats = auditor.audit(storage).as_dict()
        else:
            reclaim = float(cfg.get("object", "reclaim_age", str(replicator.RECLAIM_AGE)))
            stats = replicator.replicate(storage, reclaim).as_dict()
    print(json.dumps(stats, sort_keys=True))
    return 0


def cmd_image(args, parser) -> int:
    from pocketstack.compute import tinyimage

    if getattr(args, "image_command", None) != "build-tiny":
        return _usage(parser, "image")
    try:
        path = tinyimage.build(force=args.force)
    except tinyimage.BuildError as exc:
        raise UserError(str(exc)) from None
    print(f"image file: {path}")
    if args.no_register:
        return 0
    _server, _rt = _runtime(_load(args))
    image = tinyimage.register(path)
    print(f"image {image['name']}: {image['id']} ({image['status']}, {image['visibility']})")
    return 0


COMMANDS = {"up": cmd_up, "init": cmd_init, "db": cmd_db, "token-keys": cmd_token_keys, "config": cmd_config,
            "ring": cmd_ring, "object": cmd_object, "image": cmd_image}

if __name__ == "__main__":
    sys.exit(main())
