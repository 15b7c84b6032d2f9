"""The [streamlog] section: defaults, expansion, sizes, and one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor_streamlog.config import (
    SETTINGS,
    Config,
    ConfigError,
    describe,
    from_mapping,
    load,
)


def make(tmp_path: Path, **values: str) -> Config:
    return from_mapping(values, here=str(tmp_path), environ={})


def test_defaults(tmp_path: Path) -> None:
    config = make(tmp_path)
    assert config.logdir == str(tmp_path / "streamlog")
    assert config.programs == ("*",)
    assert config.format == "text"
    assert config.timezone == "local"
    assert config.maxbytes == 50 * 1024 * 1024
    assert config.backups == 10
    assert config.max_total_bytes == 0
    assert config.compress is False
    assert config.max_line_length == 16384
    assert config.flush_interval == 0
    assert config.partial_timeout == 500
    assert config.write_buffer == 16 * 1024 * 1024
    assert config.bind == "127.0.0.1:9002"
    assert config.websocket_enabled is True
    assert config.username is None
    assert config.password is None
    assert config.allowed_origins is None
    assert config.certfile is None
    assert config.keyfile is None


def test_dataclass_defaults_agree_with_the_settings_table(tmp_path: Path) -> None:
    """One place declares each default: Config() and SETTINGS must not drift apart."""
    logdir = str(tmp_path / "streamlog")
    assert Config(logdir=logdir) == make(tmp_path)
    assert {s.name for s in SETTINGS} == set(Config.__dataclass_fields__) - {"source"}


def test_here_expansion_and_relative_logdir(tmp_path: Path) -> None:
    assert make(tmp_path, logdir="%(here)s/logs").logdir == str(tmp_path / "logs")
    # A relative logdir is relative to the config file's directory, not the cwd.
    assert make(tmp_path, logdir="rel/logs").logdir == str(tmp_path / "rel" / "logs")
    assert make(tmp_path, logdir="/abs/logs").logdir == "/abs/logs"


def test_env_expansion(tmp_path: Path) -> None:
    config = from_mapping(
        {"logdir": "%(ENV_LOGROOT)s/x", "username": "%(ENV_WHO)s", "password": "p"},
        here=str(tmp_path),
        environ={"LOGROOT": "/var/log/sl", "WHO": "admin"},
    )
    assert config.logdir == "/var/log/sl/x"
    assert config.username == "admin"


def test_env_expansion_uses_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMLOG_TEST_USER", "someone")
    config = from_mapping(
        {"username": "%(ENV_STREAMLOG_TEST_USER)s", "password": "p"}, here=str(tmp_path)
    )
    assert config.username == "someone"


def test_double_percent_is_a_literal_percent(tmp_path: Path) -> None:
    assert make(tmp_path, username="u", password="100%%sure").password == "100%sure"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0", 0),
        ("4096", 4096),
        ("500KB", 500 * 1024),
        ("10MB", 10 * 1024 * 1024),
        ("10mb", 10 * 1024 * 1024),
        ("1GB", 1024**3),
    ],
)
def test_sizes(tmp_path: Path, value: str, expected: int) -> None:
    assert make(tmp_path, maxbytes=value).maxbytes == expected
    assert make(tmp_path, max_total_bytes=value).max_total_bytes == expected
    assert make(tmp_path, write_buffer=value).write_buffer == expected


@pytest.mark.parametrize(
    "value, expected",
    [("true", True), ("Yes", True), ("on", True), ("1", True)]
    + [("false", False), ("NO", False), ("off", False), ("0", False)],
)
def test_booleans(tmp_path: Path, value: str, expected: bool) -> None:
    assert make(tmp_path, compress=value).compress is expected
    assert make(tmp_path, websocket_enabled=value).websocket_enabled is expected


def test_choices_are_case_insensitive(tmp_path: Path) -> None:
    config = make(tmp_path, format="JSON", timezone="UTC")
    assert (config.format, config.timezone) == ("json", "utc")


def test_programs_list(tmp_path: Path) -> None:
    assert make(tmp_path, programs="web worker:*").programs == ("web", "worker:*")
    assert make(tmp_path, programs="web, worker:*,db").programs == ("web", "worker:*", "db")
    assert make(tmp_path, programs="web\n  worker:*").programs == ("web", "worker:*")


@pytest.mark.parametrize(
    "value", ["127.0.0.1:9002", "localhost:80", "[::1]:9002", "0.0.0.0:1", "unix:/tmp/s.sock"]
)
def test_good_bind(tmp_path: Path, value: str) -> None:
    assert make(tmp_path, bind=value).bind == value


def test_blank_optional_values_are_unset(tmp_path: Path) -> None:
    config = make(tmp_path, username="", password="  ")
    assert config.username is None and config.password is None


BAD = [
    ("maxbytes", "ten"),
    ("maxbytes", "-1"),
    ("maxbytes", "1.5MB"),
    ("maxbytes", "10M"),
    ("max_total_bytes", "lots"),
    ("write_buffer", "-5KB"),
    ("backups", "-1"),
    ("backups", "many"),
    ("backups", "2.5"),
    ("format", "xml"),
    ("timezone", "Europe/Paris"),
    ("compress", "maybe"),
    ("websocket_enabled", "2"),
    ("max_line_length", "79"),
    ("max_line_length", "big"),
    ("flush_interval", "-10"),
    ("partial_timeout", "soon"),
    ("bind", "9002"),
    ("bind", "localhost:99999"),
    ("bind", "localhost:0"),
    ("bind", ":9002"),
    ("bind", "unix:"),
    ("bind", "host:port"),
    ("programs", " , "),
    ("maxbytes", "ten\nMB"),  # a multi-line ini value still makes one line
]


@pytest.mark.parametrize("key, value", BAD)
def test_bad_value_is_one_line_naming_key_and_value(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(tmp_path, **{key: value})
    message = str(info.value)
    assert "\n" not in message
    assert key in message
    assert repr(value) in message or value in message
    assert "Traceback" not in message


def test_empty_logdir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make(tmp_path, logdir="")
    assert "logdir" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["%(ENV_NOPE)s/x", "%(nope)s", "50%", "%d"])
def test_bad_expansion_is_one_line_naming_key_and_value(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(tmp_path, logdir=value)
    message = str(info.value)
    assert "\n" not in message
    assert "logdir" in message and repr(value) in message


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make(tmp_path, maxbyte="10MB")
    message = str(info.value)
    assert "'maxbyte'" in message and "\n" not in message
    assert "maxbytes" in message  # the list of known keys helps spot the typo


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("present", ["certfile", "keyfile"])
def test_certfile_and_keyfile_go_together(tmp_path: Path, present: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(tmp_path, **{present: "/etc/ssl/x.pem"})
    message = str(info.value)
    assert "certfile" in message and "keyfile" in message and "\n" not in message


def test_certfile_and_keyfile_together(tmp_path: Path) -> None:
    config = make(tmp_path, certfile="%(here)s/c.pem", keyfile="%(here)s/k.pem")
    assert config.certfile == f"{tmp_path}/c.pem"
    assert config.keyfile == f"{tmp_path}/k.pem"


@pytest.mark.parametrize(
    "programs, group, name, expected",
    [
        ("*", "any", "thing", True),
        ("web", "web", "web", True),
        ("web", "other", "web", True),  # a bare name matches the process name...
        ("web", "web", "web_00", True),  # ...or the group of a numprocs program
        ("web", "webx", "webx", False),
        ("web", "website", "web_01", False),
        ("Web", "web", "web", False),  # names are case sensitive, as in supervisord
        ("web_*", "web", "web_01", True),
        ("worker:*", "worker", "worker_00", True),
        ("worker:*", "web", "worker", False),  # group:name globs look at the group
        ("worker:w1", "worker", "w1", True),
        ("worker:w1", "worker", "w2", False),
        ("web:web", "web", "web", True),
        ("*:w?", "grp", "w1", True),
        ("*:w?", "grp", "w10", False),
        ("[ab]*", "cat", "cat", False),
        ("[ab]*", "bat", "bat", True),
        ("db web", "web", "web", True),
        ("db web", "db", "db", True),
        ("db web", "cache", "cache", False),
    ],
)
def test_captures(tmp_path: Path, programs: str, group: str, name: str, expected: bool) -> None:
    assert make(tmp_path, programs=programs).captures(group, name) is expected


def test_load_reads_the_section_from_a_supervisord_conf(tmp_path: Path) -> None:
    path = tmp_path / "supervisord.conf"
    path.write_text(
        "[supervisord]\nlogfile = %(here)s/supervisord.log\n\n"
        "[program:web]\ncommand = /bin/cat\n\n"
        "[streamlog]\n"
        "logdir = %(here)s/logs ; a comment\n"
        "maxbytes = 10MB\n"
        "programs = web\n"
        "   worker:*\n"
        "# a comment line\n"
        "format = json\n"
    )
    config = load(str(path), environ={})
    assert config.logdir == str(tmp_path / "logs")
    assert config.maxbytes == 10 * 1024 * 1024
    assert config.programs == ("web", "worker:*")
    assert config.format == "json"
    assert config.source == str(path)


def test_load_without_a_section_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "supervisord.conf"
    path.write_text("[supervisord]\n")
    config = load(str(path), environ={})
    assert config == make(tmp_path)


def test_load_relative_path_expands_here_to_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "s.conf").write_text("[streamlog]\nlogdir = %(here)s/l\n")
    monkeypatch.chdir(tmp_path)
    assert load(os.path.join("etc", "s.conf"), environ={}).logdir == str(tmp_path / "etc" / "l")


def test_load_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "nope.conf"))
    message = str(info.value)
    assert "nope.conf" in message and "\n" not in message


def test_load_unparsable_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text("this is not\nan ini file\n")
    with pytest.raises(ConfigError) as info:
        load(str(path))
    message = str(info.value)
    assert "bad.conf" in message and "\n" not in message


def test_load_bad_value_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.conf"
    path.write_text("[streamlog]\nbackups = lots\n")
    with pytest.raises(ConfigError) as info:
        load(str(path))
    message = str(info.value)
    assert "backups" in message and "'lots'" in message and "\n" not in message


def test_describe_lists_every_setting() -> None:
    lines = describe()
    assert len(lines) == len(SETTINGS)
    for setting, line in zip(SETTINGS, lines):
        assert line.startswith(setting.name + " = ")


@pytest.mark.parametrize("given", [{"username": "ops"}, {"password": "s3cret"}])
def test_username_and_password_go_together(tmp_path: Path, given: dict) -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping(given, here=str(tmp_path), environ={})
    assert "username and password must be set together" in str(caught.value)
