"""Settings are read once, with the contract's names and defaults, and refused with a named message."""

from __future__ import annotations

import pytest

from clock_app.settings import DEFAULT_MAX_BODY_BYTES, load_settings
from clockcore import contract
from clockcore.errors import SettingError


def test_defaults_follow_the_contract():
    settings = load_settings({})
    assert settings.metadata_uri is None
    assert settings.threshold_ms == contract.DEFAULT_THRESHOLD_MS == 1.0
    assert settings.cache_ttl_s == contract.DEFAULT_CACHE_TTL_SECONDS == 1.0
    assert settings.max_reference_age_s == contract.DEFAULT_MAX_REFERENCE_AGE_SECONDS
    assert settings.max_drift_ppm == contract.DEFAULT_MAX_DRIFT_PPM
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert not settings.local_mode and not settings.bench_routes and not settings.access_log
    assert settings.clockbound_shm is None  # no segment: the gate asks the metadata endpoint


def test_values_are_read_from_the_contract_names():
    settings = load_settings(
        {
            contract.ENV_METADATA_URI: "http://169.254.170.2/v4/abc",
            contract.ENV_THRESHOLD_MS: "2.5",
            contract.ENV_CACHE_TTL: "0.5",
            contract.ENV_MAX_REFERENCE_AGE: "60",
            contract.ENV_MAX_DRIFT_PPM: "0",
            "CLOCK_APP_HOST": "0.0.0.0",
            "CLOCK_APP_PORT": "9000",
            "CLOCK_APP_BENCH_ROUTES": "yes",
            "CLOCK_APP_BENCH_TWIN_AFTER": "on",
            "CLOCK_EMULATOR_URL": "http://127.0.0.1:5000/",
            contract.ENV_CLOCKBOUND_SHM: " /var/run/clockbound/shm0 ",
        }
    )
    assert settings.metadata_uri == "http://169.254.170.2/v4/abc"
    assert (settings.threshold_ms, settings.cache_ttl_s, settings.max_reference_age_s, settings.max_drift_ppm) == (2.5, 0.5, 60.0, 0.0)
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.bench_routes and settings.local_mode and settings.emulator_url == "http://127.0.0.1:5000"
    assert settings.bench_twin_after
    assert settings.clockbound_shm == contract.CLOCKBOUND_SHM_PATH


def test_an_empty_segment_path_means_no_segment():
    assert load_settings({contract.ENV_CLOCKBOUND_SHM: "  "}).clockbound_shm is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (contract.ENV_THRESHOLD_MS, "-1", "out of range"),
        (contract.ENV_THRESHOLD_MS, "nan", "not a finite number"),
        (contract.ENV_CACHE_TTL, "61", "out of range"),
        (contract.ENV_CACHE_TTL, "0", "out of range; expected a number greater than 0 and at most 60"),
        (contract.ENV_MAX_REFERENCE_AGE, "1e5", "out of range; expected a number greater than 0 and at most 86400"),
        (contract.ENV_THRESHOLD_MS, "5e6", "out of range"),
        (contract.ENV_MAX_DRIFT_PPM, "1001", "out of range; expected a number from 0 to 1000"),
        (contract.ENV_MAX_REFERENCE_AGE, "soon", "is not a number"),
        (contract.ENV_MAX_DRIFT_PPM, "-3", "out of range"),
        ("CLOCK_APP_PORT", "80.5", "is not an integer"),
        ("CLOCK_APP_MAX_BODY_BYTES", "10", "out of range"),
        ("CLOCK_APP_BENCH_ROUTES", "maybe", "not a yes/no value"),
        ("CLOCK_EMULATOR_URL", "localhost:5000", "not an http(s) URL"),
        ("CLOCK_APP_HOST", "a b", "not a host name"),
        (contract.ENV_CLOCKBOUND_SHM, "shm0", "expected 1-4096 characters of an absolute path"),
        (contract.ENV_CLOCKBOUND_SHM, "/" + "x" * 4096, "characters long"),
    ],
)
def test_bad_values_name_the_setting(name, value, message):
    with pytest.raises(SettingError) as raised:
        load_settings({name: value})
    assert raised.value.setting == name
    assert str(raised.value).startswith(f"{name}: ") and message in str(raised.value)
