"""Suite files for `assistant eval actions` are validated with clear errors (no models)."""

from __future__ import annotations

import pytest

from assistant.errors import ConfigError
from assistant.home.eval_actions import home_path, load_suite


@pytest.mark.parametrize(
    "line, words",
    [
        ("{not json", ["not JSON"]),
        ('{"text": ""}', ["non-empty"]),
        ('{"text": "hi", "expected": {}}', ["unknown key", "expected"]),
        ('{"text": "hi", "expect": {"change": {}}}', ["changes", "says"]),
    ],
)
def test_bad_suites_say_what_is_wrong(tmp_path, line, words):
    p = tmp_path / "s.jsonl"
    p.write_text(line + "\n")
    with pytest.raises(ConfigError) as e:
        load_suite(p)
    assert all(w in e.value.message for w in words)


def test_homes_by_name():
    assert home_path("family_house").name == "family_house.yaml"
    with pytest.raises(ConfigError, match="example"):
        home_path("no_such_home")
