"""The `pocketstack` command, driven as a user drives it: subprocesses, real clients, signals."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import OPENSTACK, POCKETSTACK, Cloud, free_port
from pocketstack.common.db import MIGRATING_SERVICES, head_revision

COMMANDS = [[], ["up"], ["init"], ["db"], ["db", "upgrade"], ["db", "version"], ["token-keys"],
            ["token-keys", "rotate"], ["config"], ["config", "get"], ["config", "set"]]


def clean_env(**extra) -> dict:
    """The caller's environment without any pocketstack or OpenStack client settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POCKETSTACK_", "OS_"))}
    env.update(extra)
    return env


def ps(*args, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([POCKETSTACK, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env())


def assert_user_error(res: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, exactly one line on stderr starting `pocketstack: error:`, no traceback."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("pocketstack: error: "), res.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def openstack(*args, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([OPENSTACK, *args], capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert res.returncode == 0, f"openstack {' '.join(args)}:\n{res.stdout}\n{res.stderr}"
    return res


def clouds_env(state_dir: Path) -> dict:
    return clean_env(OS_CLOUD="pocketstack", OS_CLIENT_CONFIG_FILE=str(state_dir / "clouds.yaml"))


def read_events(state_dir: Path) -> list[dict]:
    path = state_dir / "logs" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------------------- help
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "pocketstack")
def test_help(command):
    res = ps(*command, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: pocketstack" + "".join(f" {c}" for c in command))
    assert res.stderr == ""


def test_top_level_help_lists_every_command_and_version():
    out = ps("--help").stdout
    for name in ("up", "init", "db", "token-keys", "config"):
        assert re.search(rf"^\s+{re.escape(name)}\b", out, re.M), name
    res = ps("--version")
    assert res.returncode == 0 and res.stdout.startswith("pocketstack ")


def test_no_command_prints_help_and_fails():
    res = ps()
    assert res.returncode == 2 and "usage: pocketstack" in res.stdout
    for command in (["db"], ["token-keys"], ["config"]):  # a command without its action
        res = ps(*command)
        assert res.returncode == 2 and f"usage: pocketstack {command[0]}" in res.stdout, res


# ---------------------------------------------------------------------------- user mistakes
def test_unknown_command():
    assert_user_error(ps("frobnicate"), "frobnicate")


@pytest.mark.parametrize("args", [["up", "--port", "notaport"], ["config", "get"], ["db", "version", "--bogus"],
                                  ["config", "set", "a", "b"]])
def test_bad_arguments(args, tmp_path):
    assert_user_error(ps(*args))


def test_config_get_of_an_unset_key(tmp_path):
    assert_user_error(ps("config", "get", "--state-dir", tmp_path, "nosuch", "key"), "[nosuch] key is not set")


def test_token_keys_rotate_on_an_empty_state_dir(tmp_path):
    assert_user_error(ps("token-keys", "rotate", "--state-dir", tmp_path / "empty"), "pocketstack init")


def test_unparseable_config_file(tmp_path):
    (tmp_path / "pocketstack.conf").write_text("[pocketstack\nport = 1\n")
    assert_user_error(ps("config", "get", "--state-dir", tmp_path, "pocketstack", "port"), "cannot parse")


def test_bad_integer_in_config(tmp_path):
    assert ps("config", "set", "--state-dir", tmp_path, "pocketstack", "port", "fivethousand").returncode == 0
    assert_user_error(ps("up", "--state-dir", tmp_path), "[pocketstack] port must be an integer")


def test_up_on_a_port_already_in_use(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        started = time.monotonic()
        res = ps("up", "--state-dir", tmp_path / "s", "--port", port)
        assert_user_error(res, f"127.0.0.1:{port}", "in use")
        assert time.monotonic() - started < 20
    assert "serving" not in res.stdout  # it failed before printing the banner
    conf = tmp_path / "s" / "pocketstack.conf"
    assert not conf.exists() or str(port) not in conf.read_text()


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "postgresql"])
def test_up_with_an_unreachable_database(tmp_path, scheme):
    url = f"{scheme}://root@127.0.0.1:{free_port()}/nothere"
    res = ps("up", "--state-dir", tmp_path, "--port", free_port(), "--db-url", url, timeout=60)
    assert_user_error(res, "cannot use the database")
    # the bad URL was not adopted by the state dir: the next plain command uses the default again
    conf = tmp_path / "pocketstack.conf"
    assert not conf.exists() or "nothere" not in conf.read_text()
    assert ps("db", "version", "--state-dir", tmp_path).returncode == 0


# ---------------------------------------------------------------------------- init, db, config
def _counts(db: Path) -> dict:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("identity_domain", "identity_project", "identity_user", "identity_role",
                          "identity_assignment", "identity_service", "identity_endpoint", "identity_region")}


def test_init_twice_is_idempotent_and_writes_client_files(tmp_path):
    sd = tmp_path / "state"
    first = ps("init", "--state-dir", sd, "--admin-password", "first-Secret-1")
    assert first.returncode == 0, first.stderr
    assert f"schema migrated: {', '.join(MIGRATING_SERVICES)}" in first.stdout
    clouds, openrc = sd / "clouds.yaml", sd / "openrc"
    assert f"clouds.yaml: {clouds}" in first.stdout and f"openrc: {openrc}" in first.stdout
    for path in (clouds, openrc, sd / "pocketstack.conf", sd / "admin-password"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    counts = _counts(sd / "pocketstack.db")
    assert counts["identity_project"] == 2 and counts["identity_user"] == 1
    assert counts["identity_endpoint"] >= 3 and counts["identity_endpoint"] % 3 == 0  # public/internal/admin
    before = clouds.read_text(), openrc.read_text()
    assert "auth_url: http://127.0.0.1:5000/v3" in before[0] and "password: 'first-Secret-1'" in before[0]
    assert "export OS_PASSWORD=first-Secret-1" in before[1]
    keys = sorted(p.name for p in (sd / "fernet-keys").iterdir())

    second = ps("init", "--state-dir", sd)
    assert second.returncode == 0, second.stderr
    assert "schema migrated" not in second.stdout
    assert _counts(sd / "pocketstack.db") == counts
    assert (clouds.read_text(), openrc.read_text()) == before  # same password, not a new random one
    assert sorted(p.name for p in (sd / "fernet-keys").iterdir()) == keys


def test_openrc_quotes_any_password(tmp_path):
    password = "it's a \"pass\" $HOME `x` \\ ;"
    assert ps("init", "--state-dir", tmp_path, "--admin-password", password).returncode == 0
    out = subprocess.run(["bash", "-c", f"source {tmp_path / 'openrc'}; printf %s \"$OS_PASSWORD\""],
                         capture_output=True, text=True, env=clean_env())
    assert out.stdout == password, out
    import yaml

    cloud = yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]["pocketstack"]
    assert cloud["auth"]["password"] == password


def test_db_upgrade_and_version(tmp_path):
    heads = {svc: head_revision(svc) for svc in MIGRATING_SERVICES}
    assert all(heads.values())
    res = ps("db", "version", "--state-dir", tmp_path)
    assert res.returncode == 0, res.stderr
    for svc, head in heads.items():
        assert f"{svc}: none (head {head})" in res.stdout
    res = ps("db", "upgrade", "--state-dir", tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == f"upgraded: {', '.join(MIGRATING_SERVICES)}", res
    assert ps("db", "upgrade", "--state-dir", tmp_path).stdout.strip() == "schema is up to date"
    res = ps("db", "version", "--state-dir", tmp_path)
    assert res.stdout.strip().splitlines() == [f"{svc}: {head} (head {head})" for svc, head in heads.items()]


def test_config_set_and_get(tmp_path):
    sd = tmp_path / "a"
    res = ps("config", "set", "--state-dir", sd, "identity", "password_hash_rounds", "5")
    assert res.returncode == 0, res.stderr
    assert ps("config", "get", "--state-dir", sd, "identity", "password_hash_rounds").stdout == "5\n"
    text = (sd / "pocketstack.conf").read_text()
    assert "[identity]" in text and "password_hash_rounds = 5" in text
    # defaults are readable too
    assert ps("config", "get", "--state-dir", sd, "token", "expiration").stdout == "3600\n"


def test_config_honours_the_state_dir_environment_variable(tmp_path):
    env_dir, flag_dir = tmp_path / "from-env", tmp_path / "from-flag"
    env = clean_env(POCKETSTACK_STATE_DIR=str(env_dir))
    assert ps("config", "set", "identity", "password_hash_rounds", "6", env=env).returncode == 0
    assert "password_hash_rounds = 6" in (env_dir / "pocketstack.conf").read_text()
    assert ps("config", "get", "identity", "password_hash_rounds", env=env).stdout == "6\n"
    # --state-dir wins over the environment
    assert ps("config", "set", "--state-dir", flag_dir, "identity", "password_hash_rounds", "7",
              env=env).returncode == 0
    assert ps("config", "get", "--state-dir", flag_dir, "identity", "password_hash_rounds", env=env).stdout == "7\n"
    assert ps("config", "get", "identity", "password_hash_rounds", env=env).stdout == "6\n"


# ---------------------------------------------------------------------------- against a running cloud
def test_up_banner(cloud):
    out = (cloud.state_dir / "up.out").read_text()
    assert f"URL:          {cloud.url}" in out
    assert f"admin / {cloud.admin_password}" in out
    assert str(cloud.state_dir / "clouds.yaml") in out and "OS_CLOUD=pocketstack" in out
    assert f"source {cloud.state_dir / 'openrc'}" in out


def test_clouds_yaml_works_with_the_openstack_cli(cloud):
    res = openstack("token", "issue", "-f", "json", env=clouds_env(cloud.state_dir))
    token = json.loads(res.stdout)
    assert token["id"] and token["project_id"] and token["user_id"]


def test_openrc_works_with_the_openstack_cli(cloud):
    res = subprocess.run(["bash", "-c", f"source {cloud.state_dir / 'openrc'}; "
                                        f"{OPENSTACK} project list -f value -c Name"],
                         capture_output=True, text=True, timeout=120, env=clean_env())
    assert res.returncode == 0, res.stderr
    assert {"admin", "service"} <= set(res.stdout.split())


def test_every_change_is_journaled_without_secrets(cloud):
    env = clouds_env(cloud.state_dir)
    name = "ev-" + uuid.uuid4().hex[:8]
    project = json.loads(openstack("project", "create", "--description", "d", "-f", "json", name, env=env).stdout)
    # the rest through the API directly (the CLI costs seconds per call)
    api = httpx.Client(base_url=cloud.auth_url, headers={"X-Auth-Token": cloud.token()})
    user_password = "Very-Secret-" + uuid.uuid4().hex[:8]
    new_password = "Other-Secret-" + uuid.uuid4().hex[:8]
    r = api.post("/users", json={"user": {"name": name, "password": user_password}})
    assert r.status_code == 201, r.text
    user = r.json()["user"]
    assert api.patch(f"/users/{user['id']}", json={"user": {"password": new_password}}).status_code == 200
    assert api.patch(f"/projects/{project['id']}", json={"project": {"description": "x"}}).status_code == 200
    assert api.delete(f"/projects/{project['id']}").status_code == 204
    api.close()

    events = read_events(cloud.state_dir)
    for ev in events:
        assert {"message_id", "event_type", "timestamp", "payload"} <= set(ev), ev

    def find(kind, rid):
        return [e for e in events if e["event_type"] == kind and e["payload"].get("resource_info") == rid]

    created = find("identity.project.created", project["id"])
    assert len(created) == 1
    assert created[0]["initiator"]["user_id"]  # who did it
    assert find("identity.project.updated", project["id"])
    assert find("identity.project.deleted", project["id"])
    assert find("identity.user.created", user["id"]) and find("identity.user.updated", user["id"])

    journal = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    for secret in (user_password, new_password, cloud.admin_password):
        assert secret not in journal
    log = (cloud.state_dir / "logs" / "pocketstack.log").read_text()
    assert user_password not in log and new_password not in log


def _validates(cloud, token: str) -> bool:
    # a write first: it bumps the identity generation, so the check below really decrypts again
    admin = cloud.token()
    r = httpx.post(cloud.auth_url + "/regions", json={"region": {"description": "bump"}},
                   headers={"X-Auth-Token": admin})
    assert r.status_code == 201, r.text
    r = httpx.get(cloud.auth_url + "/auth/tokens", headers={"X-Auth-Token": admin, "X-Subject-Token": token})
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def _works(cloud, token: str) -> bool:
    return httpx.get(cloud.auth_url + "/projects", headers={"X-Auth-Token": token}).status_code == 200


def _rotate(cloud) -> str:
    res = ps("token-keys", "rotate", "--state-dir", cloud.state_dir)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_token_key_rotation_while_running(cloud):
    keys = cloud.state_dir / "fernet-keys"
    t0 = cloud.token()
    assert _works(cloud, t0)
    start = max(int(p.name) for p in keys.iterdir() if p.name.isdigit())

    out = _rotate(cloud)
    assert f"key {start + 1} is now primary" in out
    assert _validates(cloud, t0) and _works(cloud, t0)  # issued before: still good
    t1 = cloud.token()
    assert _validates(cloud, t1) and _works(cloud, t1)   # new tokens work

    out = _rotate(cloud)
    assert f"key {start + 2} is now primary" in out
    # max_active_keys 3 (the default) = staged + primary + one secondary, as in Keystone
    assert sorted(int(p.name) for p in keys.iterdir() if p.name.isdigit()) == [0, start + 1, start + 2]
    assert _validates(cloud, t1) and _works(cloud, t1)   # issued before this rotation: still good
    t2 = cloud.token()
    assert _validates(cloud, t2) and _works(cloud, t2)
    # t0's key (the primary two rotations ago) has been pruned, so t0 is gone, as upstream
    assert not _validates(cloud, t0)

    # with one more key kept, a token survives two rotations
    assert ps("config", "set", "--state-dir", cloud.state_dir, "fernet_tokens", "max_active_keys", "4").returncode == 0
    try:
        t3 = cloud.token()
        _rotate(cloud)
        assert _validates(cloud, t3)
        _rotate(cloud)
        assert _validates(cloud, t3) and _works(cloud, t3)
        assert len([p for p in keys.iterdir() if p.name.isdigit()]) == 4
        assert _validates(cloud, cloud.token())
    finally:
        ps("config", "set", "--state-dir", cloud.state_dir, "fernet_tokens", "max_active_keys", "3")


# ---------------------------------------------------------------------------- lifecycle
class Up:
    """`pocketstack up` in the foreground, as a user runs it."""

    def __init__(self, state_dir: Path, *args, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([POCKETSTACK, "up", "--port", str(self.port), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env or clean_env())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read()
            try:
                if httpx.get(self.url + "/v3", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("pocketstack up did not start")

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"pocketstack up ignored {sig!r}:\n{out}")
        return self.proc.returncode, out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _password_token(url: str, password: str) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    r = httpx.post(url + "/v3/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def _banner_password(out: str) -> str:
    m = re.search(r"admin:\s+admin / (\S+)", out)
    assert m, out
    return m.group(1)


def test_stop_restart_keeps_data_and_password(tmp_path):
    sd = tmp_path / "state"
    assert ps("config", "set", "--state-dir", sd, "identity", "password_hash_rounds", "4").returncode == 0
    env = clouds_env(sd)

    up = Up(sd, "--state-dir", sd)  # no password given: a random one, kept in the state dir
    try:
        name = "keep-" + uuid.uuid4().hex[:8]
        pid = json.loads(openstack("project", "create", "-f", "json", name, env=env).stdout)["id"]
        code, out = up.stop(signal.SIGTERM)
    finally:
        up.kill()
    assert code == 0, out
    assert out.rstrip().endswith("pocketstack stopped"), out
    assert "Traceback" not in out
    password = _banner_password(out)
    assert (sd / "admin-password").read_text().strip() == password

    # restart (state dir from the environment this time) and stop with Ctrl-C
    up = Up(sd, env=clean_env(POCKETSTACK_STATE_DIR=str(sd)))
    try:
        token = _password_token(up.url, password)  # the same password still works
        r = httpx.get(f"{up.url}/v3/projects/{pid}", headers={"X-Auth-Token": token})
        assert r.status_code == 200 and r.json()["project"]["name"] == name
        code, out = up.stop(signal.SIGINT)
    finally:
        up.kill()
    assert code == 0, out
    assert out.rstrip().endswith("pocketstack stopped") and "Traceback" not in out, out
    assert _banner_password(out) == password

    # an explicit new password sticks for later plain runs too
    up = Up(sd, "--state-dir", sd, "--admin-password", "New-Admin-Pw-1")
    up.stop()
    up = Up(sd, "--state-dir", sd)
    try:
        assert "New-Admin-Pw-1" in (sd / "clouds.yaml").read_text()
        assert _password_token(up.url, "New-Admin-Pw-1")
        code, out = up.stop()
    finally:
        up.kill()
    assert code == 0 and _banner_password(out) == "New-Admin-Pw-1", out


# ---------------------------------------------------------------------------- MariaDB
MYSQL = dict(host="127.0.0.1", port=3306, user="root")


@pytest.fixture(scope="module")
def mysql_cloud(tmp_path_factory):
    try:
        import pymysql

        pymysql.connect(connect_timeout=3, **MYSQL).close()
    except Exception:
        if os.environ.get("CI"):
            pytest.fail("MariaDB on 127.0.0.1:3306 is required in CI")
        pytest.skip("no MariaDB on 127.0.0.1:3306")
    name = "pocketstack_test_" + uuid.uuid4().hex[:8]
    conn = pymysql.connect(autocommit=True, **MYSQL)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    c = Cloud(tmp_path_factory.mktemp("mysqlcloud"), db_url=f"mysql+pymysql://root@127.0.0.1:3306/{name}")
    try:
        c.start()
        yield c
    finally:
        c.stop()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def test_cloud_on_mariadb(mysql_cloud):
    c = mysql_cloud
    assert "database mysql+pymysql://root@127.0.0.1:3306/" in (c.state_dir / "up.out").read_text()
    env = clouds_env(c.state_dir)
    token = json.loads(openstack("token", "issue", "-f", "json", env=env).stdout)
    assert token["id"] and token["project_id"]
    name = "my-" + uuid.uuid4().hex[:8]
    project = json.loads(openstack("project", "create", "--description", "ünïcode ✓", "-f", "json", name,
                                   env=env).stdout)
    listed = openstack("project", "list", "-f", "value", "-c", "Name", env=env).stdout.split()
    assert name in listed and "admin" in listed
    shown = json.loads(openstack("project", "show", "-f", "json", project["id"], env=env).stdout)
    assert shown["description"] == "ünïcode ✓"
    openstack("project", "delete", project["id"], env=env)
    assert name not in openstack("project", "list", "-f", "value", "-c", "Name", env=env).stdout.split()
    res = ps("db", "version", "--db-url", c.db_url)
    assert res.returncode == 0
    for svc in MIGRATING_SERVICES:
        assert f"{svc}: {head_revision(svc)} (head {head_revision(svc)})" in res.stdout
