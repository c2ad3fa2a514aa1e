"""pipeline.yaml validation: bad files name the problem and the fix."""

from __future__ import annotations

import pytest

from assistant.config import DEFAULT_PIPELINE, load_settings
from assistant.errors import ConfigError


def test_repo_pipeline_yaml_loads():
    s = load_settings(DEFAULT_PIPELINE)
    assert s.stages[0] == "wake" and s.asr.model == "tiny.en"
    assert "alexa" in s.wake.models and "hey_jarvis" in s.wake.models


@pytest.mark.parametrize(
    "text, code, fragment",
    [
        ("wake: [unclosed", "config-malformed", "line"),
        ("wake:\n  treshold: 0.4\n", "config-invalid", "wake.treshold"),
        ("wake:\n  threshold: 1.5\n", "config-invalid", "wake.threshold"),
        ("stages: [asr, wake, nlu, respond]\n", "config-invalid", "order"),
        ("stages: [wake, asr, respond]\n", "config-invalid", "nlu"),
        ("- just\n- a list\n", "config-malformed", "mapping"),
        ("version: 7\n", "config-version", "version 7"),
    ],
)
def test_malformed_config_says_what_and_where(tmp_path, text, code, fragment):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.code == code
    assert fragment in err.value.message
    assert str(path) in err.value.message


def test_profile_overrides_values(tmp_path):
    prof = tmp_path / "pi5.yaml"
    prof.write_text("profile:\n  name: test\nasr:\n  threads: 4\nwake:\n  threshold: 0.6\n")
    s = load_settings(DEFAULT_PIPELINE, prof)
    assert s.asr.threads == 4 and s.wake.threshold == 0.6
    assert s.asr.model == "tiny.en"  # untouched values stay


def test_missing_config(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "none.yaml")
    assert err.value.code == "config-not-found"
