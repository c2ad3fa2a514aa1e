"""`assistant ui` in a real browser (Debian's headless Chromium driven by Selenium through chromedriver) on a trace
store filled by replaying the bundled demo recordings through the real models, plus the server's security rules
over plain HTTP.

Screenshots go to the test's tmp dir (printed); ASSISTANT_UI_README_SHOT=PATH also saves the turn page there
(how docs/ui.png is made).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assistant" / "data" / "demo"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> dict[str, Path]:
    """A data dir whose store holds the demo recordings' turns, replayed through the real pipeline."""
    root = tmp_path_factory.mktemp("ui")
    data, out = root / "data", root / "out"
    _cli("replay", *sorted(str(p) for p in DEMO.glob("*.flac")), "--data-dir", str(data), "--out", str(out))
    db = data / "traces.db"
    n = sqlite3.connect(db).execute("SELECT count(*) FROM turns").fetchone()[0]
    assert n >= 4, f"the demo replay stored {n} turns"
    return {"root": root, "data": data, "out": out, "db": db}


def _server(db: Path, data: Path, out: Path, **kw):
    from assistant.ui.app import UiConfig
    from assistant.ui.bench import Server, free_port

    return Server(UiConfig(db_path=db, data_dir=data, out_dir=out, port=free_port(), **kw))


@pytest.fixture(scope="module")
def server(replayed):
    with _server(replayed["db"], replayed["data"], replayed["out"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver or a browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="ui-chromium-")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1300,1500",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _turn_id(db: Path, like: str) -> str:
    row = sqlite3.connect(db).execute("SELECT turn_id FROM turns WHERE transcript LIKE ?", (like,)).fetchone()
    assert row, f"no replayed turn heard {like!r}"
    return row[0]


def _wait(fn, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > end:
            return value
        time.sleep(0.1)


def test_open_a_turn_from_the_list_and_play_its_audio(server, browser, replayed, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/turns")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.turns tbody tr")
    n = sqlite3.connect(replayed["db"]).execute("SELECT count(*) FROM turns").fetchone()[0]
    assert len(rows) == n
    row = next(r for r in rows if "kitchen light" in r.text.lower())
    row.find_element(By.CSS_SELECTOR, "a.turn-link").click()
    tid = _turn_id(replayed["db"], "%kitchen light%")
    assert browser.current_url.endswith(f"/turn/{tid}")
    assert "kitchen light" in browser.find_element(By.CSS_SELECTOR, "h1.said").text.lower()
    # the waterfall has a bar per stage, ASR among them, with the duration the store has
    stages = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#waterfall .wf-stage")]
    assert {"endpoint_wait", "asr", "nlu", "respond", "tts"} <= set(stages)
    asr_ms = (
        sqlite3.connect(replayed["db"])
        .execute("SELECT end_ms - start_ms FROM spans WHERE turn_id = ? AND stage = 'asr'", (tid,))
        .fetchone()[0]
    )
    asr_row = next(e for e in browser.find_elements(By.CSS_SELECTOR, "#waterfall .wf-row") if e.text.startswith("asr"))
    assert f"{asr_ms:,.0f} ms" in asr_row.text
    # the action changed the home: the kitchen light was off before and on after
    assert "kitchen.light" in browser.find_element(By.XPATH, "//h3[text()='Home state change']/following::table").text
    for el_id in ("response-audio", "request-audio"):
        browser.execute_script(f"document.getElementById('{el_id}').play()")
        state = _wait(
            lambda el_id=el_id: browser.execute_script(
                f"const a = document.getElementById('{el_id}');"
                "return a.currentTime > 0.2 && !a.error ? [a.currentTime, a.duration] : null"
            )
        )
        assert state, f"{el_id} did not play"
        assert state[1] > 0.5, f"{el_id} is {state[1]} s long"
    # the request audio is the turn's own segment of the recording, not the whole file
    src = json.loads(
        sqlite3.connect(replayed["db"]).execute("SELECT source FROM turns WHERE turn_id = ?", (tid,)).fetchone()[0]
    )
    duration = browser.execute_script("return document.getElementById('request-audio').duration")
    assert abs(duration - (src["end_seconds"] - src["offset_seconds"])) < 0.05
    shot = tmp_path / "ui-turn.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
    if os.environ.get("ASSISTANT_UI_README_SHOT"):
        browser.set_window_size(1300, 1250)
        browser.save_screenshot(os.environ["ASSISTANT_UI_README_SHOT"])


def test_mark_a_turn_wrong_then_filter_the_defects(server, browser, replayed, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    db = sqlite3.connect(replayed["db"])

    def defects() -> set[str]:
        return {r[0] for r in db.execute("SELECT turn_id FROM labels WHERE label = 'defect'")}

    _cli("traces", "label", "--data-dir", str(replayed["data"]))  # signals: barge-ins, unsupported requests...
    before = defects()
    # a turn not labelled defect (ok first): on a loaded machine the replay's responses start late, overlap the next
    # recorded request and every such turn is a barge-in, so only the last turn ("What time is it?", unknown) is left
    tid, said = db.execute(
        "SELECT t.turn_id, t.transcript FROM turns t JOIN labels l ON l.turn_id = t.turn_id "
        "WHERE l.label <> 'defect' ORDER BY l.label = 'ok' DESC, t.started_at LIMIT 1"
    ).fetchone()
    browser.get(f"{server.url}/turn/{tid}")
    browser.find_element(By.ID, "mark-wrong").click()
    assert "as wrong?" in browser.find_element(By.CSS_SELECTOR, ".confirm .question").text
    assert db.execute("SELECT count(*) FROM events WHERE type = 'feedback'").fetchone()[0] == 0  # not before "yes"
    browser.find_element(By.ID, "confirm-yes").click()
    assert "Marked wrong" in browser.find_element(By.ID, "marked-notice").text
    assert "answer=no" in browser.find_element(By.CSS_SELECTOR, "#events .ev-feedback").text
    rows = db.execute("SELECT turn_id, data FROM events WHERE type = 'feedback'").fetchall()
    assert [(r[0], json.loads(r[1])["answer"]) for r in rows] == [(tid, "no")]

    # the labeller turns the explicit "no" into a defect label; the list filtered by label shows the defects
    _cli("traces", "label", "--data-dir", str(replayed["data"]))
    after = defects()
    assert after == before | {tid}
    browser.get(server.url + "/turns")
    Select(browser.find_element(By.ID, "f-label")).select_by_value("defect")  # htmx refreshes the list in place
    assert _wait(
        lambda: (
            "label=defect" in browser.current_url
            and len(browser.find_elements(By.CSS_SELECTOR, "table.turns tbody tr")) == len(after)
        )
    )
    texts = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.turns tbody tr")]
    assert any(said in t for t in texts)
    assert browser.find_element(By.ID, "count").text.startswith(f"{len(after)} turn")

    browser.get(server.url + "/defects")
    summary = browser.find_element(By.ID, "defect-summary").text
    assert f"{len(after)} defective" in summary, summary
    assert browser.find_elements(By.CSS_SELECTOR, "#defect-chart svg circle")
    intent = db.execute("SELECT intent FROM turns WHERE turn_id = ?", (tid,)).fetchone()[0]
    n_intent = sum(
        db.execute("SELECT intent FROM turns WHERE turn_id = ?", (t,)).fetchone()[0] == intent for t in after
    )
    browser.find_element(By.ID, "by-intent").find_element(By.LINK_TEXT, intent).click()
    assert _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "table.turns tbody tr")) == n_intent)
    browser.save_screenshot(str(tmp_path / "ui-defects.png"))


def test_search_sessions_latency_learning_pages(server, browser, replayed):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/turns?q=garage")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.turns tbody tr")
    assert len(rows) == 1 and "garage" in rows[0].text.lower()
    browser.get(server.url + "/turns?q=zebra")
    assert "No turns match" in browser.find_element(By.CSS_SELECTOR, "table.turns").text
    browser.get(server.url + "/sessions")
    assert browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    browser.get(server.url + "/latency")
    table = browser.find_element(By.ID, "latency-table").text
    assert "asr" in table and "tts" in table
    assert browser.find_elements(By.CSS_SELECTOR, "#latency-table svg.hist rect")
    browser.get(server.url + "/learning")
    assert "No rewrite table yet" in browser.find_element(By.TAG_NAME, "main").text


# -- security, over plain HTTP ---------------------------------------------------------------------------------
def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_audio_is_served_only_from_inside_the_allowed_dirs(replayed, tmp_path):
    """A turn whose stored audio path points outside the data/out dirs (or through a symlink out of them) gets 404."""
    data = tmp_path / "data"
    shutil.copytree(replayed["data"], data)
    db = sqlite3.connect(data / "traces.db")
    ids = [r[0] for r in db.execute("SELECT turn_id FROM turns ORDER BY started_at")]
    outside = tmp_path / "elsewhere" / "secret.wav"
    outside.parent.mkdir()
    shutil.copyfile(next(replayed["out"].glob("*.wav")), outside)
    (data / "link.wav").symlink_to(outside)
    evil = [str(outside), str(data / ".." / "elsewhere" / "secret.wav"), str(data / "link.wav"), "/etc/passwd"]
    for tid, path in zip(ids, evil):
        db.execute("UPDATE turns SET response_audio = ? WHERE turn_id = ?", (path, tid))
    db.commit()
    with _server(data / "traces.db", data, replayed["out"]) as srv:
        for tid in ids[: len(evil)]:
            assert _get(f"{srv.url}/audio/{tid}/response")[0] == 404
        ok = ids[len(evil)]
        status, body, headers = _get(f"{srv.url}/audio/{ok}/response")
        assert status == 200 and body[:4] == b"RIFF"
        assert _get(f"{srv.url}/audio/..%2F..%2Fetc%2Fpasswd/response")[0] == 404


def test_token_host_and_form_checks(replayed):
    with _server(replayed["db"], replayed["data"], replayed["out"], token="s3cret") as srv:
        assert _get(srv.url + "/turns")[0] == 401
        assert _get(srv.url + "/turns?token=wrong")[0] == 401
        status, _, headers = _get(srv.url + "/turns?token=s3cret&intent=x")
        assert status == 303 and headers["location"] == "/turns?intent=x"
        cookie = headers["set-cookie"].split(";")[0]
        assert _get(srv.url + "/turns", {"Cookie": cookie})[0] == 200
    with _server(replayed["db"], replayed["data"], replayed["out"]) as srv:
        assert _get(srv.url + "/turns", {"Host": "attacker.example"})[0] == 400  # DNS rebinding
        tid = _turn_id(replayed["db"], "%garage%")
        req = urllib.request.Request(f"{srv.url}/turn/{tid}/feedback", data=b"mark=wrong&confirm=yes", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 403  # no CSRF token: nothing written
        n = (
            sqlite3.connect(replayed["db"])
            .execute("SELECT count(*) FROM events WHERE type = 'feedback' AND turn_id = ?", (tid,))
            .fetchone()[0]
        )
        assert n == 0


def test_opted_out_users_are_never_shown(replayed, tmp_path):
    from assistant.trace.privacy import opt_out

    data = tmp_path / "data"
    shutil.copytree(replayed["data"], data)
    db = sqlite3.connect(data / "traces.db")
    user = db.execute("SELECT user_id FROM sessions LIMIT 1").fetchone()[0]
    tid = db.execute("SELECT turn_id FROM turns LIMIT 1").fetchone()[0]
    with _server(data / "traces.db", data, replayed["out"]) as srv:
        assert tid.encode() in _get(srv.url + "/turns")[1]
        opt_out(data, user)  # recorded as opted out, turns kept in the store (as `privacy opt-out --keep`)
        body = _get(srv.url + "/turns")[1]
        assert tid.encode() not in body and b"No turns match" in body
        assert _get(f"{srv.url}/turn/{tid}")[0] == 404
        assert _get(f"{srv.url}/audio/{tid}/response")[0] == 404
        assert _get(f"{srv.url}/turns?q=the")[1].count(b"turn-link") == 0


def test_goal_labels_rollback_and_deleting_a_users_data(browser, replayed, tmp_path):
    from selenium.webdriver.common.by import By

    from assistant.learning import markov
    from assistant.trace.privacy import is_opted_out

    data, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(replayed["data"], data)
    shutil.copytree(replayed["out"], out)
    db = sqlite3.connect(data / "traces.db")
    for col in ("response_audio", "record"):  # this copy's audio, so that deleting it leaves the other tests' alone
        db.execute(f"UPDATE turns SET {col} = replace({col}, ?, ?)", (str(replayed["out"]), str(out)))
    db.commit()
    _cli("learn", "labels", "--data-dir", str(data))  # goal labels and failure points (models/labels)
    fps = dict(
        db.execute(
            "SELECT failure_point, count(*) FROM goal_labels WHERE failure_point IS NOT NULL GROUP BY 1"
        ).fetchall()
    )
    assert fps, "the labeller found no failing stage in the demo turns"
    table = {
        "play some jazz": {
            "target": "play jazz",
            "probability": 0.9,
            "baseline": 0.2,
            "eventual": 0.5,
            "support": 4,
            "users": 2,
            "direct_success": 0.9,
        }
    }
    markov.write_table(data, table)
    markov.write_table(data, table)
    assert markov.current_version(data) == 2
    with _server(data / "traces.db", data, out) as srv:
        browser.get(srv.url + "/defects")
        stage, n = max(fps.items(), key=lambda kv: kv[1])
        assert stage in browser.find_element(By.ID, "by-stage").text
        assert browser.find_elements(By.CSS_SELECTOR, "#top-failing li a")
        browser.find_element(By.ID, "by-stage").find_element(By.LINK_TEXT, stage).click()
        assert len(browser.find_elements(By.CSS_SELECTOR, "table.turns tbody tr")) == n
        assert all(stage in r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.turns tbody tr"))

        browser.get(srv.url + "/learning")
        rows = browser.find_elements(By.CSS_SELECTOR, "#rewrite-tables tbody tr")
        assert [r.text.split()[0] for r in rows] == ["v2", "v1"]
        assert "play jazz" in browser.find_element(By.TAG_NAME, "main").text
        rows[1].find_element(By.TAG_NAME, "button").click()
        assert markov.current_version(data) == 2  # not before the confirmation
        browser.find_element(By.ID, "confirm-yes").click()
        assert "rolled back to v1" in browser.find_element(By.CSS_SELECTOR, ".notice").text
        assert markov.current_version(data) == 1

        browser.get(srv.url + "/privacy")
        users = browser.find_elements(By.CSS_SELECTOR, "#users tbody tr")
        assert len(users) == 1
        user_id = db.execute("SELECT user_id FROM sessions").fetchone()[0]
        audio = [Path(r[0]) for r in db.execute("SELECT response_audio FROM turns")]
        assert all(p.is_file() for p in audio)
        users[0].find_element(By.NAME, "stop_recording").click()
        users[0].find_element(By.TAG_NAME, "button").click()
        browser.find_element(By.ID, "confirm-yes").click()
        assert f"deleted {len(audio)} turns" in browser.find_element(By.ID, "privacy-done").text
        assert db.execute("SELECT count(*) FROM turns").fetchone()[0] == 0
        assert not any(p.exists() for p in audio)
        assert is_opted_out(data, user_id)
        browser.get(srv.url + "/turns")
        assert "No turns match" in browser.find_element(By.CSS_SELECTOR, "table.turns").text
