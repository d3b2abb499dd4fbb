"""Settings: defaults, parsing, and start-up refusing a bad value by name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.config import SCOPES, SettingsError, load_settings


def test_defaults_match_the_design():
    settings = load_settings()
    assert settings.clusters == "auto" and settings.worker == "inline"
    assert settings.fixed_clusters is None and settings.first_clusters == 8
    assert settings.database_url.startswith("sqlite:///")
    assert set(settings.event_weights) == {
        "view",
        "click",
        "search",
        "like",
        "dislike",
        "share",
        "purchase",
        "review",
    }
    assert settings.event_weights["dislike"] < 0


def test_api_keys_parse_with_scopes_and_admin_implies_all():
    settings = load_settings(api_keys="reader-0123456789abcdef:read,ops-0123456789abcdef:admin")
    assert settings.api_keys["reader-0123456789abcdef"] == {"read"}
    assert settings.api_keys["ops-0123456789abcdef"] == SCOPES


def test_environment_values_are_read(monkeypatch):
    monkeypatch.setenv("APP_CLUSTERS", "12")
    monkeypatch.setenv("APP_EVENT_WEIGHTS", '{"view": 1, "rate": 2.5}')
    settings = load_settings()
    assert settings.clusters == 12 and settings.event_weights == {"view": 1.0, "rate": 2.5}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("APP_CLUSTERS", "many"),
        ("APP_CLUSTERS", "1"),
        ("APP_WORKER", "sometimes"),
        ("APP_API_KEYS", "short:read"),
        ("APP_API_KEYS", "long-enough-key-0123:superuser"),
        ("APP_EVENT_WEIGHTS", "{not json"),
        ("APP_EVENT_WEIGHTS", "{}"),
        ("APP_PROFILE_HALF_LIFE_DAYS", "0"),
        ("APP_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_start_up_stops_with_the_message(tmp_path):
    env = os.environ | {"APP_CLUSTERS": "zero", "APP_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "APP_CLUSTERS" in result.stderr and "Traceback" not in result.stderr
