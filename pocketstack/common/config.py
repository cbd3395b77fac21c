"""Configuration: one INI file in the state dir, with upstream's section and key names.

Operators know `keystone.conf`; pocketstack keeps the same sections and keys
(`[token] expiration`, `[security_compliance] lockout_failure_attempts`, ...) so that
their knowledge carries over, and adds a `[pocketstack]` section for what is ours
(host, port, region, enabled services).

Precedence for the options that `pocketstack up` takes: command line, then the
environment (`POCKETSTACK_<KEY>`), then the config file, then the default.
"""
from __future__ import annotations

import configparser
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_NAME = "pocketstack.conf"

DEFAULT_STATE_DIR = Path(os.path.expanduser("~/.local/share/pocketstack"))

# (section, key) -> default, as strings, the way they are written in the file.
DEFAULTS: dict[tuple[str, str], str] = {
    ("pocketstack", "host"): "127.0.0.1",
    ("pocketstack", "port"): "5000",
    ("pocketstack", "region"): "RegionOne",
    ("pocketstack", "public_url"): "",
    ("pocketstack", "workers"): "1",
    ("pocketstack", "enabled_services"): "identity,image,object,compute,network,volume",
    ("database", "connection"): "",
    ("DEFAULT", "admin_token"): "",
    ("DEFAULT", "max_request_body_size"): "114688",
    ("DEFAULT", "list_limit"): "",
    ("token", "expiration"): "3600",
    ("token", "allow_expired_window"): "172800",
    ("token", "revoke_by_id"): "true",
    ("fernet_tokens", "max_active_keys"): "3",
    ("identity", "password_hash_rounds"): "12",
    ("identity", "max_password_length"): "4096",
    ("identity", "default_domain_id"): "default",
    ("security_compliance", "lockout_failure_attempts"): "0",
    ("security_compliance", "lockout_duration"): "1800",
    ("security_compliance", "unique_last_password_count"): "0",
    ("security_compliance", "minimum_password_age"): "0",
    ("security_compliance", "password_expires_days"): "0",
    ("security_compliance", "password_regex"): "",
    ("security_compliance", "password_regex_description"): "",
    ("security_compliance", "change_password_upon_first_use"): "false",
    ("security_compliance", "disable_user_account_days_inactive"): "0",
    ("application_credential", "user_limit"): "-1",
    ("trust", "max_redelegation_count"): "3",
    ("trust", "allow_redelegation"): "false",
    ("log", "level"): "INFO",
    # compute hosts (the fake virt driver until a real one lands) and the scheduler
    ("compute", "compute_driver"): "fake",
    ("compute", "fake_hosts"): "1",
    ("compute", "fake_host_vcpus"): "32",
    ("compute", "fake_host_memory_mb"): "65536",
    ("compute", "fake_host_disk_gb"): "1024",
    ("compute", "fake_delay"): "0",
    ("compute", "fake_fail_hosts"): "",
    ("compute", "fake_fail_names"): "",
    ("compute", "cpu_allocation_ratio"): "16.0",
    ("compute", "ram_allocation_ratio"): "1.5",
    ("compute", "disk_allocation_ratio"): "1.0",
    ("compute", "service_down_time"): "60",
    ("compute", "report_interval"): "10",
    ("compute", "default_availability_zone"): "nova",
    ("compute", "max_attempts"): "3",
    # the network dataplane (docs/network-dataplane.md): noop or linuxbridge (root)
    ("network", "backend"): "noop",
    ("linux_bridge", "physical_interface_mappings"): "",
    ("linux_bridge", "run_dir"): "/run/pocketstack-network",
    ("linux_bridge", "dhcp_lease_duration"): "86400",
    ("vxlan", "local_ip"): "",
    ("vxlan", "vxlan_group"): "224.0.0.1",
}

# Options `pocketstack up` exposes as flags/env vars -> where they live in the file.
UP_OPTIONS = {
    "host": ("pocketstack", "host"),
    "port": ("pocketstack", "port"),
    "region": ("pocketstack", "region"),
    "db_url": ("database", "connection"),
    "public_url": ("pocketstack", "public_url"),
    "workers": ("pocketstack", "workers"),
    "fake_hosts": ("compute", "fake_hosts"),
    "virt_driver": ("compute", "compute_driver"),
    "network_backend": ("network", "backend"),
}


class ConfigError(Exception):
    """A configuration value that cannot be used; the CLI prints it as one line."""


@dataclass
class Config:
    """The loaded configuration of one state dir."""

    state_dir: Path
    parser: configparser.ConfigParser = field(default_factory=lambda: _new_parser())
    overrides: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- loading / saving -------------------------------------------------
    @classmethod
    def load(cls, state_dir: str | os.PathLike | None = None) -> "Config":
        sd = Path(state_dir or os.environ.get("POCKETSTACK_STATE_DIR") or DEFAULT_STATE_DIR)
        cfg = cls(state_dir=sd.expanduser().resolve())
        if cfg.path.exists():
            try:
                cfg.parser.read(cfg.path, encoding="utf-8")
            except configparser.Error as exc:
                raise ConfigError(f"cannot parse {cfg.path}: {exc}".replace("\n", " ")) from exc
        for name, (section, key) in UP_OPTIONS.items():
            env = os.environ.get("POCKETSTACK_" + name.upper())
            if env:
                cfg.overrides[(section, key)] = env
        return cfg

    @property
    def path(self) -> Path:
        return self.state_dir / CONFIG_NAME

    def save(self) -> None:
        """Write the file atomically (temp file + rename), readable by the owner only."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            self.parser.write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    # -- access -----------------------------------------------------------
    def get(self, section: str, key: str, default: str | None = None) -> str:
        if (section, key) in self.overrides:
            return self.overrides[(section, key)]
        if section == "DEFAULT":
            if key in self.parser.defaults():
                return self.parser.defaults()[key]
        elif self.parser.has_option(section, key):
            return self.parser.get(section, key, raw=True)
        if default is not None:
            return default
        return DEFAULTS.get((section, key), "")

    def getint(self, section: str, key: str) -> int:
        raw = self.get(section, key)
        try:
            return int(raw) if raw != "" else 0
        except ValueError:
            raise ConfigError(f"[{section}] {key} must be an integer, not {raw!r}") from None

    def getbool(self, section: str, key: str) -> bool:
        raw = self.get(section, key).strip().lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("", "0", "false", "no", "off"):
            return False
        raise ConfigError(f"[{section}] {key} must be true or false, not {raw!r}")

    def set(self, section: str, key: str, value: str) -> None:
        if section != "DEFAULT" and not self.parser.has_section(section):
            self.parser.add_section(section)
        self.parser.set(section, key, value)

    def override(self, section: str, key: str, value: str) -> None:
        """Set for this process only (command-line flags); not written to the file."""
        self.overrides[(section, key)] = value

    # -- derived values ---------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.get("database", "connection") or f"sqlite:///{self.state_dir / 'pocketstack.db'}"

    @property
    def host(self) -> str:
        return self.get("pocketstack", "host")

    @property
    def port(self) -> int:
        return self.getint("pocketstack", "port")

    @property
    def region(self) -> str:
        return self.get("pocketstack", "region")

    @property
    def public_url(self) -> str:
        """Base URL clients use; the catalog is built from it."""
        url = self.get("pocketstack", "public_url")
        if url:
            return url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def enabled_services(self) -> list[str]:
        return [s.strip() for s in self.get("pocketstack", "enabled_services").split(",") if s.strip()]

    def data_dir(self, name: str) -> Path:
        path = self.state_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def admin_password(self) -> str:
        """The admin password: env var, else the one kept in the state dir, else a new random one."""
        env = os.environ.get("POCKETSTACK_ADMIN_PASSWORD")
        if env:
            return env
        path = self.state_dir / "admin-password"
        if path.exists():
            return path.read_text().strip()
        pw = secrets.token_urlsafe(18)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pw + "\n")
        return pw


def _new_parser() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep key case as written (upstream keys are lower case anyway)
    return parser
