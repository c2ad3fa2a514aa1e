"""Issue 21's rough edges, checked through the CLI's own entry point (in-process, no models): the README's command
lines parse; options go before the command too; empty text, missing/undecodable files and bad eval data are clear
errors with a non-zero exit; `traces show` of a live turn; `listen --no-status` still prints answers; the README's
claims about setup.sh and `assistant models`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from assistant.cli import main as cli_main
from assistant.cli.common import hoist_global_options, print_turn
from assistant.trace.store import TraceStore, TurnTrace

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDERS = {"N": "2", "USER": "alice", "SIM_DIR": "runs/sim1", "TARGET": "nlu"}


def readme_command_lines() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        lines += [ln.strip() for ln in block.splitlines() if ln.strip().startswith("assistant ")]
    return lines


def readme_argv(line: str) -> list[str]:
    """A README line as a user would type it: `[--opt X]` included, `a|b` -> a, `(see ...)` notes dropped."""
    line = re.sub(r"\s\(\S+\)", " ", line)
    argv = shlex.split(line.replace("[", "").replace("]", ""), comments=True)[1:]
    out = []
    for tok in argv:
        tok = tok.split("|")[0].rstrip(".")
        out.append(PLACEHOLDERS.get(tok, tok))
    return out


def test_the_readme_has_command_lines():
    assert len(readme_command_lines()) >= 20


@pytest.mark.parametrize("line", readme_command_lines())
def test_every_readme_command_line_parses(line):
    parser = cli_main.build_parser()
    argv = readme_argv(line)
    try:
        args = parser.parse_args(hoist_global_options(parser, argv))
    except SystemExit as exc:  # argparse exits 2 on a usage error
        pytest.fail(f"README line no longer parses ({exc}): {line}")
    assert getattr(args, "func", None) is not None, line


@pytest.mark.parametrize(
    "argv, key, value",
    [
        (["--config", "x.yaml", "say", "hello"], "config", Path("x.yaml")),
        (["--data-dir", "/tmp/d", "traces", "list"], "data_dir", Path("/tmp/d")),
        (["--json", "--data-dir=/tmp/d", "traces", "show", "ab12"], "data_dir", Path("/tmp/d")),
        (
            ["-v", "--profile", "hardware/laptop.yaml", "listen", "--max-turns", "1"],
            "profile",
            Path("hardware/laptop.yaml"),
        ),
        (["--home", "h.yaml", "replay", "--no-wake", "a.wav"], "home", Path("h.yaml")),
    ],
)
def test_options_before_the_command(argv, key, value):
    parser = cli_main.build_parser()
    args = parser.parse_args(hoist_global_options(parser, argv))
    assert getattr(args, key) == value
    if "--json" in argv:
        assert args.json is True and args.turn_id == "ab12"


def test_an_option_the_command_does_not_take_is_still_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["--home", "h.yaml", "traces", "list"])
    assert exc.value.code == 2 and "--home" in capsys.readouterr().err


@pytest.mark.parametrize("text", [[""], ["   "], ["", "?!"]])
def test_say_with_nothing_to_say_is_a_usage_error(capsys, text, tmp_path):
    assert cli_main.main(["say", *text, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "assistant say: error: there is nothing to say" in err
    assert not (tmp_path / "traces.db").exists()  # no turn, no runner


@pytest.mark.parametrize(
    "content, code",
    [
        (None, "audio-not-found"),
        (b"", "audio-empty"),
        (b"not audio at all", "audio-undecodable"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20, "audio-undecodable"),
    ],
)
def test_a_bad_file_is_one_clear_error_line_and_no_turn(tmp_path, capsys, content, code):
    path = tmp_path / "clip.wav"
    if content is not None:
        path.write_bytes(content)
    assert cli_main.main(["replay", str(path), "--data-dir", str(tmp_path / "d")]) == 1
    out = capsys.readouterr()
    assert out.err.strip().splitlines() == [out.err.strip()] and out.err.startswith(f"error [{code}]: {path}")
    assert "latency" not in out.out and "Traceback" not in out.err
    assert not (tmp_path / "d" / "traces.db").exists()  # not stored as a turn: nobody spoke


def test_a_turn_without_stages_prints_no_latency_line(capsys):
    print_turn(
        {
            "turn_id": "a" * 32,
            "session_id": "b" * 32,
            "source": {"kind": "text"},
            "error": {"code": "nlu-empty-text", "message": "There is no text to understand."},
            "latency_ms": {"end_to_end": 0.0},
        },
        as_json=False,
    )
    out = capsys.readouterr().out
    assert "nlu-empty-text" in out and "latency" not in out


def test_traces_show_of_a_live_turn_has_no_none(tmp_path, capsys):
    store = TraceStore(tmp_path / "traces.db")
    rec = {
        "turn_id": "f" * 32,
        "wake": {"detected": True, "score": 0.91, "model": "alexa"},
        "transcript": "hi",
        "latency_ms": {"end_to_end": 900.0, "endpoint_wait": 560.0},
        "error": None,
    }
    store.write_turn(
        TurnTrace(
            "f" * 32,
            "s",
            "kitchen",
            "u",
            1000.0,
            1001.0,
            {"kind": "microphone"},
            {},
            {"device_id": "kitchen", "user_id": "u"},
            rec,
        )
    )
    store.close()
    assert cli_main.main(["traces", "show", "fff", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "wake   alexa score 0.91" in out and "None" not in out


@pytest.mark.parametrize(
    "lines, expect",
    [
        ('{"text": "hi", "intent": "greet"}\n', "line 1 has no text field(s) sentence_annotation, scenario, action"),
        ('{"sentence_annotation": "hi", "scenario": "x", "action": "y"}\nnot json\n', "line 2 is not JSON"),
        ("[1, 2]\n", "line 1 is not a JSON object"),
    ],
)
def test_eval_nlu_on_a_file_without_the_fields_is_a_clear_error(tmp_path, capsys, lines, expect):
    data = tmp_path / "data.jsonl"
    data.write_text(lines)
    assert cli_main.main(["eval", "nlu", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error [eval-data-invalid]: {data}: {expect}") and "Traceback" not in err


def test_eval_nlu_on_a_csv_without_the_columns(tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("text;label\nhello;greet\n")
    assert cli_main.main(["eval", "nlu", "--data", str(data)]) == 1
    assert "no column(s) answer_annotation, scenario, intent" in capsys.readouterr().err


def test_listen_no_status_still_prints_answers(monkeypatch, capsys):
    from assistant.apps import live
    from assistant.cli import listen

    class FakeRunner:
        settings = type("S", (), {"audio": type("A", (), {"model_copy": lambda self, update: self})()})()
        resolver = None

        def close(self):
            pass

    class FakeLive:
        def __init__(self, pipeline, opts, on_turn, **kw):
            self.on_turn = on_turn

        def run(self):
            self.on_turn(
                {
                    "transcript": "what time is it",
                    "intent": "datetime_query",
                    "intent_confidence": 0.93,
                    "response_text": "It is ten past nine.",
                    "latency_ms": {"end_to_end": 812.0},
                }
            )

    monkeypatch.setattr(listen, "make_runner", lambda args, out_dir=None: FakeRunner())
    monkeypatch.setattr(live, "LiveAssistant", FakeLive)
    monkeypatch.setattr(listen, "startup_self_check", lambda *a, **k: None)
    assert cli_main.main(["listen", "--no-status"]) == 0
    out = capsys.readouterr().out
    assert 'heard "what time is it"' in out and 'says "It is ten past nine."' in out and "812 ms" in out


def test_readme_debian_packages_are_the_ones_setup_installs():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    debs = re.search(r'^DEBS="([^"]+)"', setup, flags=re.MULTILINE).group(1).split()
    readme = " ".join((REPO / "README.md").read_text().split())
    listed = re.search(r"installs the Debian packages \(`([^`]+)`", readme).group(1).split()
    assert listed == debs


def test_readme_venv_size_is_the_measured_one():
    """The README states the size `du -sh .venv` gave; a much bigger or smaller venv makes it false."""
    readme = " ".join((REPO / "README.md").read_text().split())
    mb = int(re.search(r"`du -sh \.venv` gave (\d+)M", readme).group(1))
    venv = REPO / ".venv"
    if not venv.exists():
        pytest.skip("no .venv")
    size = sum(p.lstat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20
    assert abs(size - mb) / mb < 0.15, f"README says {mb}M, .venv is {size:.0f}M"


def test_models_table_has_the_file_column_the_readme_promises(monkeypatch, capsys):
    from assistant.cli import models

    assert "package, file, licence" in (REPO / "README.md").read_text()
    row = {
        "id": "nlu-x",
        "stage": "nlu",
        "package": "this repo",
        "package_version": None,
        "file": str(REPO / "models" / "nlu" / "model.onnx"),
        "licence": "Apache-2.0",
        "size_mb": 23.1,
        "sha256": "ab" * 32,
        "checksum": "ok",
    }
    monkeypatch.setattr(models, "inspect_models", lambda: [row])
    monkeypatch.setenv("COLUMNS", "200")
    assert cli_main.main(["models", "--no-load"]) == 0
    out = capsys.readouterr().out
    assert " file " in out and "models/nlu/model.onnx" in out


def test_demo_writes_traces_where_traces_list_reads():
    demo = (REPO / "scripts" / "demo.sh").read_text()
    assert "ASSISTANT_DATA_DIR=" not in demo and "--data-dir" not in demo
