import dataclasses
import logging

import pytest

from atp.adapters._auth.config import ServerSettings
from atp.core.errors import ConfigError
from atp.core.settings import TABLES, Settings
from atp.plugins.prometheus import PrometheusConfig


@pytest.fixture(autouse=True)
def empty_directory(tmp_path, monkeypatch):
    """Settings.load reads ./atp.toml: run every test where there is none."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults():
    settings = Settings.load(env={})
    assert settings == Settings()
    assert settings.store == "sqlite:///atp.db"
    assert settings.subjects == (">",)
    assert settings.coordinator_url == "local:///atp.db"


def test_every_field_is_documented_with_its_default():
    # a field docstring is not introspectable; the class source carries them
    import inspect

    source = inspect.getsource(Settings)
    for f in dataclasses.fields(Settings):
        after = source.split(f"    {f.name}: ", 1)[1].split("\n", 2)[1]
        assert after.strip().startswith('"""'), f.name
        assert "Default" in source.split(f"    {f.name}: ", 1)[1].split('"""', 2)[1], f.name


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().concurrency = 1  # type: ignore[misc]


def test_replace_checks_the_new_values():
    assert Settings().replace(concurrency=4).concurrency == 4
    with pytest.raises(ConfigError, match="'concurrency' must be greater than 0"):
        Settings().replace(concurrency=0)


def test_file_then_environment_then_overrides(empty_directory):
    (empty_directory / "atp.toml").write_text(
        '[atp]\nconcurrency = 8\nlease = "1m"\ngroup = "file"\nsubjects = ["a.*", "b"]\n'
    )
    env = {"ATP_GROUP": "env", "ATP_HEARTBEAT": "250ms", "ATP_LEASE": "45"}
    settings = Settings.load(env=env, group="override", concurrency=None)
    assert settings.concurrency == 8
    assert settings.lease == 45.0
    assert settings.heartbeat == 0.25
    assert settings.group == "override"
    assert settings.subjects == ("a.*", "b")


def test_a_file_without_the_atp_table_is_read_whole(empty_directory):
    (empty_directory / "atp.toml").write_text('store = "sqlite:///other.db"\n')
    assert Settings.load(env={}).store == "sqlite:///other.db"


def test_plugin_tables_go_to_extra(empty_directory):
    (empty_directory / "atp.toml").write_text(
        "[atp]\nconcurrency = 2\n[atp.server]\nport = 9000\n[atp.acme]\npool = 10\n"
    )
    settings = Settings.load(env={"ATP_PROMETHEUS__PORT": "9464", "ATP_SERVER__RATE": "5"})
    assert settings.extra == {
        "server": {"port": 9000, "rate": "5"},
        "acme": {"pool": 10},
        "prometheus": {"port": "9464"},
    }


@pytest.mark.parametrize(
    ("name", "reader"), [("server", ServerSettings), ("prometheus", PrometheusConfig)]
)
def test_the_tables_atp_reads_list_their_readers_keys(name, reader):
    assert TABLES[name] == {f.name for f in dataclasses.fields(reader)}


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("[atp.prometheus]\nprot = 9464\n", {}),
        ("", {"ATP_PROMETHEUS__PROT": "9464"}),
    ],
)
def test_an_unknown_key_of_a_table_atp_reads_is_refused(empty_directory, text, env):
    (empty_directory / "atp.toml").write_text(text)
    expected = (
        r"\[atp.prometheus\]: unknown key 'prot' \(did you mean 'port'\?\); "
        r"known: depth, depth_interval, host, max_subjects, port, token\Z"
    )
    with pytest.raises(ConfigError, match=expected):
        Settings.load(env=env)


def test_a_backend_table_is_refused_naming_its_url_options():
    with pytest.raises(ConfigError, match=r"atp reads no \[atp.redis\] table: .*\?prefix=atp"):
        Settings(extra={"redis": {"key_prefix": "myapp"}})


def test_a_misspelt_table_is_refused_with_a_hint():
    with pytest.raises(ConfigError, match=r"\[atp.promethus\] \(did you mean \[atp.prometheus\]"):
        Settings(extra={"promethus": {"port": 1}})


def test_a_table_holds_options():
    with pytest.raises(ConfigError, match=r"\[atp.server\] must be a table"):
        Settings(extra={"server": 8080})


def test_a_third_party_plugins_table_is_kept_with_a_warning(empty_directory, caplog):
    (empty_directory / "atp.toml").write_text("[atp.acme]\npool = 10\n")
    with caplog.at_level(logging.WARNING, logger="atp.settings"):
        settings = Settings.load(env={})
    assert settings.extra == {"acme": {"pool": 10}}
    assert "[atp.acme] is not a table atp reads" in caplog.text
    assert "settings.extra['acme']" in caplog.text


def test_config_path_from_argument_and_environment(empty_directory):
    custom = empty_directory / "conf" / "custom.toml"
    custom.parent.mkdir()
    custom.write_text("[atp]\nconcurrency = 3\n")
    assert Settings.load(env={}, path=custom).concurrency == 3
    assert Settings.load(env={"ATP_CONFIG": str(custom)}).concurrency == 3


def test_an_explicit_missing_file_is_an_error(empty_directory):
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(env={}, path=empty_directory / "missing.toml")


def test_a_malformed_file_is_an_error_naming_it(empty_directory):
    (empty_directory / "atp.toml").write_text("[atp\nconcurrency = ")
    with pytest.raises(ConfigError, match=r"config file 'atp\.toml'"):
        Settings.load(env={})


def test_an_unknown_key_in_the_file_is_refused_with_a_hint(empty_directory):
    (empty_directory / "atp.toml").write_text("[atp]\nconcurency = 3\n")
    with pytest.raises(
        ConfigError, match="unknown setting 'concurency' \\(did you mean 'concurrency'"
    ):
        Settings.load(env={})


def test_an_unknown_key_without_a_close_match_has_no_hint():
    with pytest.raises(ConfigError, match=r"unknown setting 'zzzzzz'\Z"):
        Settings.from_mapping({"zzzzzz": 1})


def test_an_unknown_environment_variable_is_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="atp.settings"):
        settings = Settings.load(env={"ATP_CONCURENCY": "3", "ATP_CONFIG": "", "OTHER": "x"})
    assert settings.concurrency == Settings().concurrency
    assert "ATP_CONCURENCY (did you mean 'concurrency'?)" in caplog.text
    assert "ATP_CONFIG" not in caplog.text


def test_environment_strings_are_converted():
    env = {
        "ATP_CONCURRENCY": "16",
        "ATP_SUBJECTS": "orders.*, sms.> ,",
        "ATP_PLUGINS": "my.plugin",
        "ATP_RETENTION": "2d",
        "ATP_MAX_PAYLOAD": "2048",
        "ATP_LOG_FORMAT": "json",
    }
    settings = Settings.load(env=env)
    assert settings.concurrency == 16
    assert settings.subjects == ("orders.*", "sms.>")
    assert settings.plugins == ("my.plugin",)
    assert settings.retention == 172800.0
    assert settings.max_payload == 2048
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("concurrency", "many", "bad value 'many'"),
        ("concurrency", True, "expected an integer"),
        ("concurrency", 2.5, "expected an integer"),
        ("lease", "soon", "not a duration"),
        ("lease", [1], "not a duration"),
    ],
)
def test_bad_values_name_the_key_and_the_value(key, value, reason):
    with pytest.raises(ConfigError, match=f"setting '{key}': .*{reason}"):
        Settings.from_mapping({key: value})


def test_whole_floats_are_integers():
    assert Settings.from_mapping({"concurrency": 4.0}).concurrency == 4


def test_lists_become_tuples_of_strings():
    assert Settings.from_mapping({"subjects": ["a", "b"]}).subjects == ("a", "b")


@pytest.mark.parametrize(
    "name",
    [
        "concurrency",
        "lease",
        "timeout",
        "max_attempts",
        "retry_cap",
        "max_payload",
        "idempotency_window",
        "forward_interval",
        "forward_batch",
        "ready_timeout",
        "reap_interval",
        "leader_ttl",
    ],
)
def test_positive_settings_refuse_zero(name):
    with pytest.raises(ConfigError, match=f"'{name}' must be greater than 0, got 0"):
        Settings().replace(**{name: 0})


def test_the_forward_horizon_is_zero_to_a_minute():
    assert Settings.from_mapping({"forward_horizon": "250ms"}).forward_horizon == 0.25
    assert Settings(forward_horizon=0).forward_horizon == 0
    with pytest.raises(ConfigError, match="'forward_horizon' must not be negative"):
        Settings(forward_horizon=-1)
    with pytest.raises(ConfigError, match="'forward_horizon' must be at most 60 s"):
        Settings(forward_horizon=61)


def test_heartbeat_must_be_shorter_than_the_lease():
    with pytest.raises(ConfigError, match=r"'heartbeat' .* must be shorter than 'lease'"):
        Settings(lease=5, heartbeat=5)


def test_log_format_is_text_or_json():
    with pytest.raises(ConfigError, match="'log_format' must be 'text' or 'json'"):
        Settings(log_format="xml")


@pytest.mark.parametrize("name", ["store", "transport"])
def test_backends_are_urls(name):
    with pytest.raises(ConfigError, match=f"setting '{name}' must be a URL, got 'atp.db'"):
        Settings().replace(**{name: "atp.db"})


def test_coordinator_defaults_to_local_for_sqlite_else_to_the_store_url():
    assert Settings(store="sqlite:////var/atp.db").coordinator_url == "local:////var/atp.db"
    assert (
        Settings(store="redis://h", coordinator="etcd://e:2379").coordinator_url == "etcd://e:2379"
    )
    assert Settings(store="redis://h").coordinator_url == "redis://h"


def test_a_missing_file_named_by_atp_config_is_an_error(empty_directory):
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(env={"ATP_CONFIG": str(empty_directory / "missing.toml")})
