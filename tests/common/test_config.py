"""Configuration: precedence (command line > environment > file > default), saving, bad values."""
from __future__ import annotations

import os
import stat

import pytest

from pocketstack import cli
from pocketstack.common.config import CONFIG_NAME, DEFAULTS, UP_OPTIONS, Config, ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("POCKETSTACK_"):
            monkeypatch.delenv(name)


def write_conf(state_dir, text: str):
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / CONFIG_NAME).write_text(text)


# ---------------------------------------------------------------------------- defaults
def test_defaults_without_a_file(tmp_path):
    cfg = Config.load(tmp_path)
    assert cfg.state_dir == tmp_path.resolve()
    assert cfg.host == "127.0.0.1"
    assert cfg.port == 5000
    assert cfg.region == "RegionOne"
    assert cfg.public_url == "http://127.0.0.1:5000"
    assert cfg.enabled_services == DEFAULTS[("pocketstack", "enabled_services")].split(",")
    assert cfg.enabled_services[0] == "identity"
    assert cfg.db_url == f"sqlite:///{tmp_path.resolve() / 'pocketstack.db'}"
    assert cfg.getint("token", "expiration") == 3600
    assert cfg.getint("fernet_tokens", "max_active_keys") == 3
    assert cfg.getbool("token", "revoke_by_id") is True
    assert cfg.get("DEFAULT", "max_request_body_size") == "114688"
    assert cfg.get("nosuch", "key") == ""
    assert cfg.get("nosuch", "key", default="x") == "x"
    assert cfg.getint("DEFAULT", "list_limit") == 0  # empty means unset


def test_every_default_is_readable(tmp_path):
    cfg = Config.load(tmp_path)
    for (section, key), value in DEFAULTS.items():
        assert cfg.get(section, key) == value


# ---------------------------------------------------------------------------- precedence
def test_file_beats_default(tmp_path):
    write_conf(tmp_path, "[pocketstack]\nport = 6000\nregion = RegionTwo\n\n[token]\nexpiration = 60\n")
    cfg = Config.load(tmp_path)
    assert cfg.port == 6000
    assert cfg.region == "RegionTwo"
    assert cfg.getint("token", "expiration") == 60
    assert cfg.host == "127.0.0.1"  # still the default


def test_environment_beats_file(tmp_path, monkeypatch):
    write_conf(tmp_path, "[pocketstack]\nport = 6000\nhost = 0.0.0.0\n\n[database]\nconnection = sqlite:///f.db\n")
    monkeypatch.setenv("POCKETSTACK_PORT", "7000")
    monkeypatch.setenv("POCKETSTACK_DB_URL", "sqlite:///env.db")
    cfg = Config.load(tmp_path)
    assert cfg.port == 7000
    assert cfg.db_url == "sqlite:///env.db"
    assert cfg.host == "0.0.0.0"  # from the file: no env var for it


def test_empty_environment_variable_is_ignored(tmp_path, monkeypatch):
    write_conf(tmp_path, "[pocketstack]\nport = 6000\n")
    monkeypatch.setenv("POCKETSTACK_PORT", "")
    assert Config.load(tmp_path).port == 6000


def test_command_line_beats_environment(tmp_path, monkeypatch):
    write_conf(tmp_path, "[pocketstack]\nport = 6000\nregion = FileRegion\n")
    monkeypatch.setenv("POCKETSTACK_PORT", "7000")
    monkeypatch.setenv("POCKETSTACK_REGION", "EnvRegion")
    args = cli.build_parser().parse_args(["up", "--state-dir", str(tmp_path), "--port", "8000"])
    cfg = cli._load(args)
    assert cfg.port == 8000              # command line
    assert cfg.region == "EnvRegion"     # environment (no flag given)
    assert cfg.host == "127.0.0.1"       # default
    args = cli.build_parser().parse_args(["up", "--state-dir", str(tmp_path), "--region", "CliRegion"])
    assert cli._load(args).region == "CliRegion"


def test_every_up_option_follows_the_precedence(tmp_path, monkeypatch):
    for name, (section, key) in UP_OPTIONS.items():
        write_conf(tmp_path, f"[{section}]\n{key} = 11\n")
        cfg = Config.load(tmp_path)
        assert cfg.get(section, key) == "11", name
        monkeypatch.setenv("POCKETSTACK_" + name.upper(), "22")
        cfg = Config.load(tmp_path)
        assert cfg.get(section, key) == "22", name
        cfg.override(section, key, "33")
        assert cfg.get(section, key) == "33", name
        monkeypatch.delenv("POCKETSTACK_" + name.upper())


def test_overrides_are_not_saved(tmp_path):
    cfg = Config.load(tmp_path)
    cfg.override("pocketstack", "port", "9999")
    cfg.set("pocketstack", "region", "Saved")
    cfg.save()
    again = Config.load(tmp_path)
    assert again.port == 5000
    assert again.region == "Saved"


def test_state_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETSTACK_STATE_DIR", str(tmp_path / "env-state"))
    assert Config.load().state_dir == (tmp_path / "env-state").resolve()
    # an explicit state dir wins
    assert Config.load(tmp_path / "explicit").state_dir == (tmp_path / "explicit").resolve()


def test_state_dir_expands_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Config.load("~/st").state_dir == (tmp_path / "st").resolve()


# ---------------------------------------------------------------------------- saving
def test_save_roundtrip_keeps_case_and_sections(tmp_path):
    cfg = Config.load(tmp_path / "new")
    cfg.set("identity", "password_hash_rounds", "5")
    cfg.set("security_compliance", "password_regex", "^(?=.*\\d)(?=.*[a-zA-Z]).{7,}$")
    cfg.set("DEFAULT", "admin_token", "ADMIN")
    cfg.set("custom", "CamelKey", "%(not interpolated)s")
    cfg.save()
    again = Config.load(tmp_path / "new")
    assert again.getint("identity", "password_hash_rounds") == 5
    assert again.get("security_compliance", "password_regex") == "^(?=.*\\d)(?=.*[a-zA-Z]).{7,}$"
    assert again.get("DEFAULT", "admin_token") == "ADMIN"
    assert again.get("custom", "CamelKey") == "%(not interpolated)s"
    text = (tmp_path / "new" / CONFIG_NAME).read_text()
    assert "[identity]" in text and "password_hash_rounds = 5" in text and "CamelKey" in text


def test_save_is_private_and_leaves_no_temp_file(tmp_path):
    cfg = Config.load(tmp_path)
    cfg.set("token", "expiration", "10")
    cfg.save()
    path = tmp_path / CONFIG_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [CONFIG_NAME]


def test_save_is_atomic(tmp_path, monkeypatch):
    """A save that fails half-way leaves the previous file intact (temp file + rename)."""
    cfg = Config.load(tmp_path)
    cfg.set("token", "expiration", "10")
    cfg.save()
    before = (tmp_path / CONFIG_NAME).read_text()
    cfg.set("token", "expiration", "20")

    def broken_write(fh, *a, **kw):
        fh.write("[token]\nexpira")
        raise OSError("disk full")

    monkeypatch.setattr(cfg.parser, "write", broken_write)
    with pytest.raises(OSError):
        cfg.save()
    assert (tmp_path / CONFIG_NAME).read_text() == before
    assert Config.load(tmp_path).getint("token", "expiration") == 10


def test_save_creates_the_state_dir(tmp_path):
    cfg = Config.load(tmp_path / "a" / "b")
    cfg.set("pocketstack", "port", "1234")
    cfg.save()
    assert Config.load(tmp_path / "a" / "b").port == 1234


# ---------------------------------------------------------------------------- bad values
def test_bad_int_raises_config_error(tmp_path):
    write_conf(tmp_path, "[pocketstack]\nport = five thousand\n")
    cfg = Config.load(tmp_path)
    with pytest.raises(ConfigError) as exc:
        cfg.port
    assert "[pocketstack] port" in str(exc.value) and "five thousand" in str(exc.value)


def test_bad_int_from_environment_raises_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETSTACK_WORKERS", "many")
    with pytest.raises(ConfigError):
        Config.load(tmp_path).getint("pocketstack", "workers")


@pytest.mark.parametrize("raw,expected", [("true", True), ("True", True), ("1", True), ("yes", True),
                                          ("on", True), ("false", False), ("0", False), ("no", False),
                                          ("off", False), ("", False), (" TRUE ", True)])
def test_getbool(tmp_path, raw, expected):
    cfg = Config.load(tmp_path)
    cfg.set("token", "revoke_by_id", raw)
    assert cfg.getbool("token", "revoke_by_id") is expected


def test_bad_bool_raises_config_error(tmp_path):
    cfg = Config.load(tmp_path)
    cfg.set("token", "revoke_by_id", "maybe")
    with pytest.raises(ConfigError):
        cfg.getbool("token", "revoke_by_id")


def test_unparseable_file_raises_config_error(tmp_path):
    write_conf(tmp_path, "port = 5000\n[pocketstack\n")
    with pytest.raises(ConfigError) as exc:
        Config.load(tmp_path)
    assert "\n" not in str(exc.value)  # one line for the CLI


def test_duplicate_option_raises_config_error(tmp_path):
    write_conf(tmp_path, "[pocketstack]\nport = 1\nport = 2\n")
    with pytest.raises(ConfigError):
        Config.load(tmp_path)


# ---------------------------------------------------------------------------- derived values
@pytest.mark.parametrize("host,port,public,expected", [
    ("127.0.0.1", "5000", "", "http://127.0.0.1:5000"),
    ("0.0.0.0", "5000", "", "http://127.0.0.1:5000"),
    ("::", "5001", "", "http://127.0.0.1:5001"),
    ("::1", "5000", "", "http://[::1]:5000"),
    ("10.0.0.5", "80", "", "http://10.0.0.5:80"),
    ("0.0.0.0", "5000", "https://cloud.example.com/", "https://cloud.example.com"),
])
def test_public_url(tmp_path, host, port, public, expected):
    cfg = Config.load(tmp_path)
    cfg.override("pocketstack", "host", host)
    cfg.override("pocketstack", "port", port)
    if public:
        cfg.override("pocketstack", "public_url", public)
    assert cfg.public_url == expected


def test_enabled_services_list(tmp_path):
    cfg = Config.load(tmp_path)
    cfg.set("pocketstack", "enabled_services", " identity, image ,,compute ")
    assert cfg.enabled_services == ["identity", "image", "compute"]


def test_data_dir_is_created(tmp_path):
    cfg = Config.load(tmp_path)
    path = cfg.data_dir("logs")
    assert path == tmp_path.resolve() / "logs" and path.is_dir()


def test_admin_password_env_then_file_then_generated(tmp_path, monkeypatch):
    cfg = Config.load(tmp_path)
    first = cfg.admin_password()
    assert len(first) >= 16
    path = tmp_path / "admin-password"
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Config.load(tmp_path).admin_password() == first   # kept
    monkeypatch.setenv("POCKETSTACK_ADMIN_PASSWORD", "from-env")
    assert Config.load(tmp_path).admin_password() == "from-env"
