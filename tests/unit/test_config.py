"""config.Settings: defaults point at the real Binance; bad values name the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from config import PROJECT_ROOT, ConfigError, Settings


def test_defaults_are_production() -> None:
    settings = Settings.from_env({})
    assert settings.port == 5021
    assert settings.binance_ws_url == "wss://fstream.binance.com"
    assert settings.binance_rest_url == "https://fapi.binance.com"
    assert settings.default_symbols == ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT")
    assert settings.reconnect_delay == 5.0
    assert settings.redis_enabled and settings.prometheus_enabled
    assert settings.async_mode == "eventlet"


def test_values_are_parsed() -> None:
    settings = Settings.from_env({
        "PORT": "6000", "REDIS_ENABLED": "false", "DEFAULT_SYMBOLS": "btcusdt, ETHUSDT,,btcusdt",
        "BINANCE_WS_URL": "ws://127.0.0.1:9000/", "BINANCE_REST_URL": "http://127.0.0.1:9000",
        "RECONNECT_DELAY": "0.5", "LOG_LEVEL": "debug", "ASYNC_MODE": "threading",
    })
    assert settings.port == 6000 and not settings.redis_enabled
    assert settings.default_symbols == ("BTCUSDT", "ETHUSDT")
    assert settings.binance_ws_url == "ws://127.0.0.1:9000"
    assert settings.reconnect_delay == 0.5 and settings.log_level == "DEBUG"


@pytest.mark.parametrize("key, value, fragment", [
    ("PORT", "abc", "whole number"), ("PORT", "70000", "whole number"), ("REDIS_ENABLED", "maybe", "true or false"),
    ("BINANCE_WS_URL", "https://fstream.binance.com", "ws://"), ("BINANCE_WS_URL", "wss://fstream.binance.com/market",
                                                                  "without a path"),
    ("BINANCE_REST_URL", "fapi.binance.com", "http"), ("DEFAULT_SYMBOLS", "BTC-USDT", "invalid symbol"),
    ("RECONNECT_DELAY", "-1", "seconds"), ("LOG_LEVEL", "LOUD", "one of"), ("ASYNC_MODE", "asyncio", "one of"),
    ("MAX_STREAMS_PER_CONNECTION", "2000", "1 to 1024"), ("LOG_FORMAT", "xml", "one of"),
    ("LOG_BACKUP_COUNT", "-1", "whole number"), ("SHUTDOWN_TIMEOUT", "0", "seconds"),
])
def test_bad_values_name_the_key_and_the_expected_form(key: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({key: value})
    assert key in str(info.value) and fragment in str(info.value)


def test_dotenv_is_read_under_the_environment(tmp_path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=7000\nSERVICE_NAME=from-file\n")
    settings = Settings.load({"PORT": "7001"}, str(env_file))
    assert settings.port == 7001 and settings.service_name == "from-file"


def test_cross_field_rule() -> None:
    with pytest.raises(ConfigError, match="PRICE_MAX_AGE"):
        Settings.from_env({"PRICE_MAX_AGE": "120", "CACHE_TTL": "60"})


def test_log_file_paths() -> None:
    from config import PROJECT_ROOT

    assert Settings().log_path() == PROJECT_ROOT / "logs" / "websocket-streaming.log"
    assert Settings.from_env({"LOG_FILE": "/var/log/ws.log"}).log_path() == Path("/var/log/ws.log")
    assert Settings.from_env({"LOG_FILE": "off"}).log_path() is None
    assert Settings.from_env({"LOG_FILE": "-"}).log_path() is None


def test_operations_settings() -> None:
    settings = Settings.from_env({"ASYNC_MODE": "GEVENT", "LOG_FORMAT": "JSON", "SHUTDOWN_TIMEOUT": "4.5"})
    assert (settings.async_mode, settings.log_format, settings.shutdown_timeout) == ("gevent", "json", 4.5)


def test_a_retired_key_is_ignored_with_a_warning_naming_its_replacement(tmp_path) -> None:
    from config import read_environment, retired_keys

    env_file = tmp_path / ".env"
    env_file.write_text("CLIENT_ABUSE_STRIKES=0\n")
    environ = read_environment({}, str(env_file))
    assert Settings.from_env(environ) == Settings()  # starts, with the defaults
    (notice,) = retired_keys(environ)
    assert "CLIENT_ABUSE_STRIKES" in notice and "CLIENT_ABUSE_TIMEOUT" in notice and "ignored" in notice
    assert retired_keys({}) == [] and retired_keys({"CLIENT_ABUSE_STRIKES": " "}) == []


def test_client_abuse_timeout() -> None:
    assert Settings().client_abuse_timeout == 10.0
    assert Settings.from_env({"CLIENT_ABUSE_TIMEOUT": "0"}).client_abuse_timeout == 0.0
    with pytest.raises(ConfigError, match="CLIENT_ABUSE_TIMEOUT.*seconds"):
        Settings.from_env({"CLIENT_ABUSE_TIMEOUT": "-1"})


def test_jwt_settings() -> None:
    origins = {"CORS_ALLOWED_ORIGINS": "https://dash.example.com"}
    settings = Settings.from_env({"JWT_SECRET": "x" * 32, "JWT_AUDIENCE": "prices", "JWT_ISSUER": "https://login",
                                  "JWT_LEEWAY": "0", **origins})
    assert (settings.jwt_audience, settings.jwt_issuer, settings.jwt_leeway) == ("prices", "https://login", 0.0)
    assert Settings().jwt_leeway == 10.0
    with pytest.raises(ConfigError, match="JWT_LEEWAY"):
        Settings.from_env({"JWT_LEEWAY": "3600"})
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"JWT_SECRET": "0123456789abcdefghijklmnopqrstu", **origins})  # 31 bytes
    message = str(info.value)
    assert "JWT_SECRET is 31 bytes" in message and "at least 32" in message and "token_urlsafe" in message
    assert "0123456789" not in message, "the secret is never shown"


@pytest.mark.parametrize("auth, keys", [({"AUTH_TOKENS": "a,b"}, "AUTH_TOKENS set"),
                                        ({"JWT_SECRET": "x" * 32}, "JWT_SECRET set"),
                                        ({"AUTH_TOKENS": "a", "JWT_SECRET": "x" * 32}, "AUTH_TOKENS and JWT_SECRET")])
def test_authentication_needs_listed_origins(auth: dict[str, str], keys: str) -> None:
    for origins in ({}, {"CORS_ALLOWED_ORIGINS": "*"}, {"CORS_ALLOWED_ORIGINS": "https://a.example,*"}):
        with pytest.raises(ConfigError) as info:
            Settings.from_env({**auth, **origins})
        message = str(info.value)
        assert "CORS_ALLOWED_ORIGINS=*" in message and keys in message and "list the origins" in message
    settings = Settings.from_env({**auth, "CORS_ALLOWED_ORIGINS": "https://dash.example.com"})
    assert settings.cors_allowed_origins == ("https://dash.example.com",)
    assert Settings.from_env({"CORS_ALLOWED_ORIGINS": "*"}).cors_allowed_origins == ("*",), "public: any origin"


def test_recording_and_replay_settings(tmp_path: Path) -> None:
    settings = Settings.from_env({})
    assert settings.record_prefix() is None and settings.replay_files() == []
    assert (settings.upstream_replay_speed, settings.upstream_replay_loop) == (1.0, True)
    for off in ("off", "none", "-"):
        assert Settings.from_env({"UPSTREAM_RECORD_FILE": off}).record_prefix() is None
    assert Settings.from_env({"UPSTREAM_RECORD_FILE": "recordings/binance"}).record_prefix() == \
        PROJECT_ROOT / "recordings" / "binance"
    for day in ("2026-12-04", "2026-12-03"):
        (tmp_path / f"binance-{day}.jsonl.gz").write_bytes(b"")
    (tmp_path / "binance-2026-12-05.jsonl.gz").mkdir()  # not a file: not a recording
    replay = Settings.from_env({"UPSTREAM_REPLAY_FILE": str(tmp_path / "binance-*.jsonl.gz"),
                                "UPSTREAM_REPLAY_SPEED": "0", "UPSTREAM_REPLAY_LOOP": "false"})
    assert replay.replay_files() == [tmp_path / "binance-2026-12-03.jsonl.gz", tmp_path / "binance-2026-12-04.jsonl.gz"]
    assert (replay.upstream_replay_speed, replay.upstream_replay_loop) == (0.0, False)
    assert Settings.from_env({"UPSTREAM_REPLAY_FILE": "docs/demo/binance-sample.jsonl.gz"}).replay_files() == [
        PROJECT_ROOT / "docs" / "demo" / "binance-sample.jsonl.gz"], "relative to the project directory"


@pytest.mark.parametrize("environ, fragment", [
    ({"UPSTREAM_REPLAY_FILE": "no/such/recording.jsonl.gz"}, "matches no file"),
    ({"UPSTREAM_REPLAY_FILE": "no/such/binance-*.jsonl.gz"}, "matches no file"),
    ({"UPSTREAM_REPLAY_SPEED": "-1"}, "speed factor"),
    ({"UPSTREAM_REPLAY_SPEED": "fast"}, "speed factor"),
    ({"UPSTREAM_REPLAY_LOOP": "sometimes"}, "true or false"),
    ({"UPSTREAM_RECORD_FILE": "recordings/binance", "UPSTREAM_REPLAY_FILE": "docs/demo/binance-sample.jsonl.gz"},
     "cannot be used with UPSTREAM_REPLAY_FILE"),
])
def test_bad_recording_settings_name_the_key(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ)
    assert fragment in str(info.value) and any(key in str(info.value) for key in environ)


def test_exchanges_are_the_registered_adapters_and_binance_is_always_on() -> None:
    from config import EXCHANGE_NAMES
    from streaming.exchanges.registry import EXCHANGES

    assert set(EXCHANGE_NAMES) == set(EXCHANGES)
    assert Settings.from_env({"EXCHANGES": "bybit, binance,BYBIT"}).exchanges == ("binance", "bybit")
    assert Settings.from_env({}).exchanges == ("binance",)
    for bad in ("bybit", "binance,okx", ","):
        with pytest.raises(ConfigError, match="EXCHANGES=.*includes binance"):
            Settings.from_env({"EXCHANGES": bad})
