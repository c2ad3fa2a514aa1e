"""assistant/text.py: the normalisers keep their (different) outputs, and the stop/cancel matchers their word sets."""

from assistant.text import (
    CANCEL_WORDS,
    NORMALIZE_SQL,
    STOP_WORDS,
    is_stop_command,
    is_stop_reply,
    norm_key,
    normalize,
    normalize_dataset,
    normalize_sql,
    normalize_unicode,
    starts_with_cancel,
)


def test_normalisers_differ_as_documented() -> None:
    text = "Don’t  play Beyoncé & Jay-Z_2, OK?"
    assert norm_key(text) == "don t play beyonce and jay z 2 ok"
    assert normalize(text) == "don't play beyonc jay z 2 ok"
    assert normalize_unicode(text) == "don't play beyoncé jay z_2 ok"
    assert normalize_dataset(text) == "don t play beyonc jay z 2 ok"
    assert normalize(None) == normalize_unicode(None) == ""
    assert normalize_dataset("What's  the TIME, now?") == "what's the time now"


def test_normalize_sql_is_the_duckdb_twin() -> None:
    assert normalize_sql("transcript") == NORMALIZE_SQL.format(x="transcript")
    try:
        import duckdb
    except ImportError:  # pragma: no cover
        return
    con = duckdb.connect()
    for text in ("Turn ON the kitchen’s light!!", "  what's   the time? ", "play AC/DC", "naïve café"):
        (got,) = con.execute(f"SELECT {normalize_sql('?')}", [text]).fetchone()
        assert got == normalize(text), text


def test_stop_words() -> None:
    assert STOP_WORDS == ("never mind", "nevermind", "cancel", "forget it", "stop", "nothing", "no", "none", "neither")
    assert [w for w in CANCEL_WORDS if w != "nevermind"] == ["never mind", "cancel", "forget it", "stop"]
    assert is_stop_reply("No thanks.") and is_stop_reply("never mind!") and not is_stop_reply("the second one")
    assert is_stop_command("OK stop now") and is_stop_command("be quiet") and not is_stop_command("forget it")
    assert not is_stop_command("stopwatch")
    assert (
        starts_with_cancel("... forget about it")
        and starts_with_cancel("That's enough")
        and starts_with_cancel("abort")
    )
    assert not starts_with_cancel("please stop") and not starts_with_cancel("stopwatch")
