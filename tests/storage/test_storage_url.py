"""`storage.url` picks the engine; it is checked when the config is read, located at FILE:LINE, and
a database password never shows in messages nor sits in a config others can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from floodlight_trust import config, statestore
from floodlight_trust.errors import ConfigError, SecretError
from floodlight_trust.storage.url import PostgresUrl, SqliteUrl


def write(tmp_path: Path, body: str, mode: int = 0o600) -> Path:
    path = tmp_path / "ftrust.toml"
    path.write_text('[state]\ndir = "state"\n\n[storage]\n' + body)
    path.chmod(mode)
    return path


def test_default_is_sqlite_in_the_state_dir(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, ""))
    assert statestore.storage_url(cfg) == SqliteUrl(tmp_path / "state" / "ftrust.sqlite3")


def test_sqlite_paths_absolute_and_relative_to_the_config(tmp_path: Path) -> None:
    absolute = config.load(write(tmp_path, f'url = "sqlite://{tmp_path}/a.sqlite3"\n'))
    assert statestore.storage_url(absolute) == SqliteUrl(tmp_path / "a.sqlite3")
    relative = config.load(write(tmp_path, 'url = "sqlite://db/b.sqlite3"\n'))
    assert statestore.storage_url(relative) == SqliteUrl(tmp_path / "db" / "b.sqlite3")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://h/db", "unknown engine 'mysql': storage.url must start with sqlite:// or postgresql://"),
        ("/var/lib/ftrust.sqlite3", "must be a URL: sqlite:///PATH or postgresql://HOST/DATABASE"),
        ("sqlite://:memory:", "needs a file path"),
        ("postgresql://db.example/", "names no database"),
        ("postgresql://db.example/ftrust?sslmod=require", 'invalid URI query parameter: "sslmod"'),
        ("postgresql://db.example/ftrust?password=hunter2", "must not carry password= as a parameter"),
    ],
)
def test_bad_urls_are_located(tmp_path: Path, url: str, message: str) -> None:
    path = write(tmp_path, f'pool_size = 4\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value).startswith(f"{path}:6: storage.url = "), str(e.value)
    assert message in str(e.value)
    assert "hunter2" not in str(e.value)


def test_a_bad_url_with_a_password_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, 'url = "postgresql://ftrust:hunter2@db.example/ftrust?nosuch=1"\n')
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert "hunter2" not in str(e.value)
    assert str(e.value).startswith(f"{path}:5: storage.url = <url with password> invalid postgresql URL")


def test_a_password_in_the_url_needs_a_0600_config(tmp_path: Path) -> None:
    path = write(tmp_path, 'url = "postgresql://ftrust:s%40cret@db.example:5433/ftrust"\n', mode=0o644)
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert str(e.value).startswith(f"{path}:5: storage.url carries a password but the config is accessible")
    assert e.value.hint is not None and f"chmod 600 {path}" in e.value.hint
    assert "s%40cret" not in str(e.value) and "s@cret" not in str(e.value)

    path.chmod(0o600)
    url = statestore.storage_url(config.load(path))
    assert isinstance(url, PostgresUrl)
    assert url.conninfo == url.display == "postgresql://ftrust@db.example:5433/ftrust"
    assert url.password is not None and url.password.reveal() == "s@cret"
    assert "s@cret" not in repr(url)


def test_password_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "db.pass"
    secret.write_text("from-file\n")
    secret.chmod(0o600)
    path = write(tmp_path, f'url = "postgresql://ftrust@db.example/ftrust"\npassword_file = "{secret}"\n', mode=0o644)
    monkeypatch.delenv("FTRUST_DB_PASSWORD", raising=False)
    url = statestore.storage_url(config.load(path))
    assert isinstance(url, PostgresUrl) and url.password is not None
    assert (url.password.reveal(), url.password.source) == ("from-file", f"file:{secret}")

    monkeypatch.setenv("FTRUST_DB_PASSWORD", "from-env")
    url = statestore.storage_url(config.load(path))
    assert isinstance(url, PostgresUrl) and url.password is not None
    assert (url.password.reveal(), url.password.source) == ("from-env", "env:FTRUST_DB_PASSWORD")


def test_a_readable_password_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "db.pass"
    secret.write_text("pw\n")
    secret.chmod(0o644)
    monkeypatch.delenv("FTRUST_DB_PASSWORD", raising=False)
    path = write(tmp_path, f'url = "postgresql://ftrust@db.example/ftrust"\npassword_file = "{secret}"\n')
    with pytest.raises(SecretError, match="accessible by group or others"):
        statestore.storage_url(config.load(path))


def test_no_password_anywhere_leaves_it_to_libpq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTRUST_DB_PASSWORD", raising=False)
    url = statestore.storage_url(config.load(write(tmp_path, 'url = "postgres://%2Frun%2FPG/ftrust"\n', mode=0o644)))
    assert url == PostgresUrl("postgresql://%2Frun%2FPG/ftrust", None)  # socket dir kept as written


def test_pool_size_is_bounded(tmp_path: Path) -> None:
    path = write(tmp_path, "pool_size = 0\n")
    with pytest.raises(ConfigError, match=r":5: storage.pool_size = 0 must be 1-1000"):
        config.load(path)
