"""Teaching (issue 15) without models: the memory, the sentences, applying concepts, and whole dialogues through the
runner with a keyword NLU (the home grammar decides the home commands; the integration tier uses the real NLU)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from assistant.config import DEFAULT_HOME, load_settings
from assistant.core import registry
from assistant.core.context import PreviousTurn, TurnContext
from assistant.core.runner import Runner
from assistant.core.stages.nlu import NluResult, Slot
from assistant.home.model import Home
from assistant.understanding.teach import phrases
from assistant.understanding.teach.apply import Teacher, routine_for
from assistant.understanding.teach.memory import FILE_NAME, MemoryView, TeachMemory, personal

NOW = datetime(2026, 1, 5, 18, 0)
SEED = "turn off the TV, set the desk lamp to 100 percent and start a 45 minute timer"


# -- the memory -------------------------------------------------------------------------------------------------
def test_memory_persists_per_home_and_user(tmp_path):
    m = TeachMemory(tmp_path)
    alex = MemoryView(m, "Example home", "alex")
    house = MemoryView(m, "Example home", "default")
    alex.define("routine", "study mode", {"steps": ["turn off the tv"]})
    house.define("value", "comfortable", {"text": "21 degrees"})
    MemoryView(m, "Other home", "alex").define("alias", "bob", {"device_ids": ["x"], "name": "x"})
    fresh = TeachMemory(tmp_path)  # another process: read from the file
    assert {c.phrase for c in MemoryView(fresh, "Example home", "alex").concepts()} == {"study mode", "comfortable"}
    assert {c.phrase for c in MemoryView(fresh, "Example home", "sam").concepts()} == {"comfortable"}
    assert {c.phrase for c in MemoryView(fresh, "Example home", None).concepts()} == {"comfortable"}
    assert personal("default") is None and personal("alex") == "alex"
    data = json.loads((tmp_path / FILE_NAME).read_text())
    assert len(data["concepts"]) == 3 and not list(tmp_path.glob("*.tmp"))


def test_redefining_replaces_and_forgetting_a_user_keeps_the_household(tmp_path):
    m = TeachMemory(tmp_path)
    alex = MemoryView(m, "h", "alex")
    first = alex.define("value", "comfortable", {"text": "21 degrees"})
    second = alex.define("value", "Comfortable", {"text": "22 degrees"})
    assert first.id == second.id and [c.meaning["text"] for c in alex.concepts()] == ["22 degrees"]
    MemoryView(m, "h", "default").define("value", "cosy", {"text": "23 degrees"})
    assert m.forget_user("alex") == 1
    assert [c.phrase for c in TeachMemory(tmp_path).all()] == ["cosy"]


def test_an_opted_out_user_leaves_nothing_on_disk(tmp_path):
    m = TeachMemory(tmp_path)
    view = MemoryView(m, "h", "alex", opted_out=True)
    view.define("alias", "bob", {"device_ids": ["living_room.floor_lamp"], "name": "floor lamp"})
    assert view.device_for("bob") is not None  # works in this process
    assert not (tmp_path / FILE_NAME).exists() and TeachMemory(tmp_path).all() == []


def test_a_damaged_memory_file_teaches_nothing_and_is_not_fatal(tmp_path):
    (tmp_path / FILE_NAME).write_text("{not json")
    m = TeachMemory(tmp_path)
    assert m.all() == []
    MemoryView(m, "h", "alex").define("value", "cosy", {"text": "23 degrees"})
    kept = list(tmp_path.glob(f"{FILE_NAME}.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{not json"  # nothing lost: kept beside the new file
    assert [c.phrase for c in TeachMemory(tmp_path).all()] == ["cosy"]


# -- the sentences -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def home():
    return Home.example()


@pytest.mark.parametrize(
    ("text", "kind", "phrase", "meaning"),
    [
        ("when I say good night, turn off all the lights and lock the back door", "define", "good night", None),
        ("when I say good night turn off all the lights", "define", "good night", "turn off all the lights"),
        ("comfortable means 21 degrees", "define", "comfortable", "21 degrees"),
        ("by cosy I mean 23 degrees", "define", "cosy", "23 degrees"),
        ("when I say the big lamp I mean the desk lamp", "define", "big lamp", "the desk lamp"),
        ("call the floor lamp Bob", "alias", "bob", "the floor lamp"),
        ("the coffee machine is called barista", "alias", "barista", "the coffee machine"),
        ("what have you learned", "list", "", ""),
        ("what does study mode mean", "explain", "study mode", ""),
        ("forget study mode", "forget", "study mode", ""),
        ("forget what comfortable means", "forget", "comfortable", ""),
        ("forget everything you learned about me", "forget_all", "", ""),
        ("I'm a Warriors fan", "preference", "", "warriors"),
        ("my favourite station is jazz radio", "preference", "", "jazz radio"),
        ("I like jazz", "preference", "", "jazz"),
    ],
)
def test_statements(home, text, kind, phrase, meaning):
    st = phrases.parse_statement(text, home)
    assert st is not None and st.kind == kind, text
    assert st.phrase == phrase
    if meaning is not None and kind != "preference":
        assert st.meaning == meaning
    if kind == "preference":
        assert st.meaning == meaning


@pytest.mark.parametrize(
    "text",
    ["turn on the kitchen light", "forget it", "I like this song", "set a timer for 5 minutes", "what time is it"],
)
def test_not_statements(home, text):
    assert phrases.parse_statement(text, home) is None


def test_steps_split_between_commands_not_inside_targets():
    assert phrases.split_steps(SEED.lower()) == [
        "turn off the tv",
        "set the desk lamp to 100 percent",
        "start a 45 minute timer",
    ]
    assert phrases.split_steps("turn off the kitchen light and the desk lamp then lock the back door") == [
        "turn off the kitchen light and the desk lamp",
        "lock the back door",
    ]
    assert phrases.split_steps("turn off all the lights lock the back door and set an alarm for 7") == [
        "turn off all the lights",
        "lock the back door",
        "set an alarm for 7",
    ]


def test_meanings(home):
    assert phrases.parse_meaning("21 degrees", home).kind == "value"
    assert phrases.parse_meaning("it means 30 percent", home).value == "30 percent"
    m = phrases.parse_meaning("the floor lamp", home)
    assert m.kind == "alias" and m.target.device_ids == ["living_room.floor_lamp"]
    assert phrases.parse_meaning(SEED, home).steps[2] == "start a 45 minute timer"
    assert phrases.parse_meaning("something nice", home).kind == "unclear"


def test_unknown_phrases_the_assistant_asks_about(home):
    assert phrases.unknown_phrase("set my room to study mode", home, set()) == ("study mode", "routine")
    assert phrases.unknown_phrase("start focus mode", home, set()) == ("focus mode", "routine")
    assert phrases.unknown_phrase("set the heating to comfortable", home, set()) == ("comfortable", "value")
    assert phrases.unknown_phrase("turn on bob", home, set()) == ("bob", "alias")
    for known in ("set the heating to 21 degrees", "turn on the floor lamp", "set the lights to blue", "turn on it"):
        assert phrases.unknown_phrase(known, home, set()) is None, known
    assert phrases.unknown_phrase("start focus mode", home, {"focus mode"}) is None
    assert phrases.reserved("stop") and phrases.reserved("never mind") and not phrases.reserved("dim", "value")


# -- applying -----------------------------------------------------------------------------------------------------
def _ctx(tmp_path, home, user="alex", history=()):
    t = Teacher(tmp_path)
    ctx = TurnContext(home, "kitchen.speaker", user, NOW, "s", tmp_path, list(history))
    ctx.taught = t.view(home, user)
    return t, ctx


def test_routine_found_with_the_words_around_it(tmp_path, home):
    t, ctx = _ctx(tmp_path, home)
    c = ctx.taught.define("routine", "study mode", {"steps": ["turn off the tv"]})
    for said in (
        "study mode",
        "set my room to study mode",
        "start study mode please",
        "it's study time",
        "at my room to study mode",
    ):
        assert routine_for(phrases.norm(said), [c]) is c, said
    for said in ("turn on the study", "study", "set the study to 20 degrees", "what is study mode"):
        assert routine_for(phrases.norm(said), [c]) is None, said
    a = t.apply("Set my room to study mode.", ctx)
    assert a.kind == "routine" and a.steps == ["turn off the tv"] and a.concepts[0]["id"] == c.id


def test_substitutions_only_where_the_words_are_meant(tmp_path, home):
    t, ctx = _ctx(tmp_path, home)
    ctx.taught.define("alias", "bob", {"device_ids": ["living_room.floor_lamp"], "name": "floor lamp"})
    ctx.taught.define("value", "dim", {"text": "30 percent"})
    ctx.taught.define("preference", "my team", {"slot": "team", "value": "Warriors", "say": "the warriors"})
    assert t.apply("turn on Bob", ctx).text == "turn on the floor lamp"
    assert t.apply("set the kitchen light to dim", ctx).text == "set the kitchen light to 30 percent"
    assert t.apply("dim the kitchen light", ctx).kind == "none"  # the verb is not the value word
    assert t.apply("how did my team do", ctx).text == "how did the warriors do"
    assert t.apply("call the desk lamp bob", ctx).kind == "none"  # a teaching sentence is never rewritten


def test_the_answer_to_the_assistants_question_is_not_rewritten(tmp_path, home):
    asked = PreviousTurn("t1", "turn on sparky", "x", "What do you mean by sparky?", True, {"skill": "teach"})
    t, ctx = _ctx(tmp_path, home, history=[asked])
    ctx.taught.define("alias", "bob", {"device_ids": ["living_room.floor_lamp"], "name": "floor lamp"})
    assert t.apply("bob", ctx).kind == "none"


def test_a_declared_music_preference_wins_over_habits_in_the_reranker(tmp_path, home):
    from assistant.understanding.rerank.context import ContextReranker, InMemoryUserHistory
    from assistant.understanding.resolve.catalog import CatalogResolver

    resolver = CatalogResolver(home)
    jazz = next(r for r, _ in resolver.music.search("jazz", etype="genre", limit=1))
    rock = next(r for r, _ in resolver.music.search("rock", etype="genre", limit=1))
    habits = InMemoryUserHistory()
    habits.add("genre", rock["id"], NOW, n=12)
    rr = ContextReranker(resolver)
    nlu = NluResult("play some music", "play_music", 0.95, (), (("play_music", 0.95),))
    _t, ctx = _ctx(tmp_path, home)
    _nlu, res, _ = rr.rerank(nlu, resolver.resolve(nlu, ctx), ctx, user_history=habits)
    assert res.first("genre").entity_id == rock["id"]
    ctx.taught.define("preference", "my music", {"slot": "music", "entity": {"type": "genre", "id": jazz["id"]}})
    _nlu, res, _ = rr.rerank(nlu, resolver.resolve(nlu, ctx), ctx, user_history=habits)
    assert res.first("genre").entity_id == jazz["id"]
    assert ctx.taught.applied[-1]["how"] == "rerank"


def test_the_resolver_knows_a_taught_name(tmp_path, home):
    from assistant.understanding.resolve.catalog import CatalogResolver

    _t, ctx = _ctx(tmp_path, home)
    ctx.taught.define("alias", "bob", {"device_ids": ["living_room.floor_lamp"], "name": "floor lamp"})
    nlu = NluResult("switch bob on", "iot_hue_lighton", 0.9, (Slot("device_type", "bob"),))
    ent = CatalogResolver(home).resolve(nlu, ctx).first("device")
    assert ent.entity_id == "living_room.floor_lamp" and ctx.taught.applied[-1]["how"] == "resolve"


# -- whole dialogues through the runner ---------------------------------------------------------------------------
class KeywordNlu:
    """A stand-in NLU for the unit tier: timers by keyword, everything else a low-confidence guess (the home
    grammar and the teach skill decide those turns, as they do with the real model)."""

    name, version = "keyword-nlu", "1"

    def parse(self, text, context=None):
        low = text.lower()
        if "timer" in low:
            dur = " ".join(w for w in low.replace("-", " ").split() if w[0].isdigit() or w.startswith("minute"))
            return NluResult(text, "timer_set", 0.95, (Slot("duration", dur),), (("timer_set", 0.95),))
        return NluResult(text, "general_quirky", 0.3, (), (("general_quirky", 0.3),))


@pytest.fixture
def runner(tmp_path):
    registry.register("nlu", "keyword", lambda build: KeywordNlu())
    s = load_settings()
    s = s.model_copy(
        update={"stages": ["nlu", "resolve", "respond"], "nlu": s.nlu.model_copy(update={"backend": "keyword"})}
    )
    made = []

    def make(user="alex", data=tmp_path / "data", rewriter=None):
        s2 = s.model_copy(update={"session": s.session.model_copy(update={"user_id": user})})
        r = Runner(s2, DEFAULT_HOME, data_dir=data, backends={"rewrite": rewriter} if rewriter else None)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
    registry.unregister("nlu", "keyword")


def test_seed_dialogue_ask_teach_carry_out_reuse_forget(runner):
    r = runner()
    r.home.set_state("living_room.tv", on=True)
    rec = r.run_text("set my room to study mode", now=NOW)
    assert rec.response_text == "What is study mode?" and rec.expects_reply and rec.intent == "teach"
    rec = r.run_text(SEED, now=NOW + timedelta(seconds=5))
    assert r.home.device("living_room.tv").state["on"] is False
    assert r.home.device("office.desk_lamp").state == {"on": True, "brightness": 100, "color": "white"}
    assert "Timer set for 45 minutes" in rec.response_text and rec.action["name"] == "teach.define"
    assert [s["text"] for s in rec.taught["steps"]] == ["set my room to study mode"] or len(rec.taught["steps"]) == 3
    r.close()
    # the next day, a new process: the routine is in the data dir
    r2 = runner()
    r2.home.set_state("living_room.tv", on=True)
    r2.home.set_state("office.desk_lamp", on=False)
    day2 = NOW + timedelta(days=1)
    rec = r2.run_text("set my room to study mode", now=day2)
    assert rec.intent == "routine" and rec.action["name"] == "routine.run" and rec.rewrite is None
    assert r2.home.device("living_room.tv").state["on"] is False and r2.home.device("office.desk_lamp").state["on"]
    assert rec.taught["applied"][0]["kind"] == "routine"
    trace = r2.store.get_turn(rec.turn_id)
    stages = [s["stage"] for s in trace["spans"]]
    assert "teach" in stages and "routine" in stages and trace["record"]["taught"]["applied"]
    rec = r2.run_text("forget study mode", now=day2 + timedelta(seconds=5))
    assert rec.response_text == "Okay, I've forgotten study mode."
    assert r2.run_text("set my room to study mode", now=day2 + timedelta(seconds=10)).expects_reply
    uses = json.loads((r2.data_dir / FILE_NAME).read_text())["concepts"]
    assert uses == []


def test_a_routine_that_unlocks_asks_before_unlocking(runner):
    r = runner()
    rec = r.run_text("when I say good night, turn off all the lights and unlock the back door", now=NOW)
    assert rec.action["name"] == "teach.confirm"  # the home has a script called good night: asked first
    r.run_text("yes", now=NOW + timedelta(seconds=5))
    r.home.set_state("kitchen.light", on=True)
    rec = r.run_text("good night", now=NOW + timedelta(seconds=10))
    assert r.home.device("kitchen.light").state["on"] is False
    assert r.home.device("kitchen.back_door").state["locked"] is True  # not yet
    assert rec.expects_reply and "Are you sure you want to unlock the back door?" in rec.response_text
    rec = r.run_text("yes", now=NOW + timedelta(seconds=15))
    assert r.home.device("kitchen.back_door").state["locked"] is False


def test_a_routine_that_opens_the_garage_asks_and_no_keeps_it_shut(runner):
    r = runner()
    r.run_text("when I say going out, open the garage door and turn on the hallway light", now=NOW)
    rec = r.run_text("going out", now=NOW + timedelta(seconds=5))
    assert rec.expects_reply and r.home.device("hallway.light").state["on"]
    r.run_text("no", now=NOW + timedelta(seconds=10))
    assert r.home.device("garage.door").state["position"] == "closed"


@pytest.mark.parametrize("word", ["stop", "cancel", "never mind"])
def test_built_in_words_are_never_taught(runner, word):
    r = runner()
    rec = r.run_text(f"when I say {word}, turn on all the lights", now=NOW)
    assert "built-in" in rec.response_text and r.teacher.memory.all() == []


def test_a_conflicting_definition_asks_before_replacing(runner):
    r = runner()
    r.run_text("comfortable means 21 degrees", now=NOW)
    rec = r.run_text("comfortable means 24 degrees", now=NOW + timedelta(seconds=5))
    assert rec.expects_reply and "Right now comfortable means 21 degrees" in rec.response_text
    r.run_text("no", now=NOW + timedelta(seconds=10))
    r.run_text("set the heating to comfortable", now=NOW + timedelta(seconds=15))
    assert r.home.device("hallway.thermostat").state["temperature"] == 21
    r.run_text("comfortable means 24 degrees", now=NOW + timedelta(seconds=20))
    r.run_text("yes", now=NOW + timedelta(seconds=25))
    r.run_text("set the heating to comfortable", now=NOW + timedelta(seconds=30))
    assert r.home.device("hallway.thermostat").state["temperature"] == 24


def test_also_adds_steps_to_a_routine_without_asking(runner):
    r = runner()
    r.run_text("when I say lights on, turn on the kitchen light", now=NOW)
    rec = r.run_text("when I say lights on also turn on the hallway light", now=NOW + timedelta(seconds=5))
    assert not rec.expects_reply and rec.action["params"]["added"] == ["turn on the hallway light"]
    r.run_text("lights on", now=NOW + timedelta(seconds=10))
    assert r.home.device("kitchen.light").state["on"] and r.home.device("hallway.light").state["on"]


def test_a_taught_meaning_wins_over_a_mined_rewrite(runner, tmp_path):
    from assistant.understanding.rewrite import Rewriter

    table = {"version": 3, "rewrites": {"turn on bob": {"target": "turn on the tv", "probability": 0.95}}}
    rw = Rewriter(tmp_path / "data", table=table)
    r = runner(rewriter=rw)
    rec = r.run_text("turn on bob", now=NOW)
    assert rec.rewrite is not None and r.home.device("living_room.tv").state["on"]  # before teaching: rewritten
    r.run_text("call the floor lamp bob", now=NOW + timedelta(seconds=5))
    rec = r.run_text("turn on bob", now=NOW + timedelta(seconds=10))
    assert rec.rewrite is None and rec.taught["applied"][0]["phrase"] == "bob"
    assert r.home.device("living_room.floor_lamp").state["on"]
    spans = [s["stage"] for s in r.store.get_turn(rec.turn_id)["spans"]]
    assert "rewrite" not in spans and "teach" in spans


def test_personal_names_stay_personal(runner, tmp_path):
    alex = runner("alex")
    alex.run_text("call the floor lamp bob", now=NOW)
    alex.close()
    sam = runner("sam")
    rec = sam.run_text("turn on bob", now=NOW + timedelta(seconds=5))
    assert rec.expects_reply and not sam.home.device("living_room.floor_lamp").state["on"]


def test_opting_out_forgets_what_the_user_taught_and_nothing_more_is_written(runner, tmp_path):
    from assistant.trace.export import export
    from assistant.trace.privacy import opt_out

    r = runner("alex")
    r.run_text("call the floor lamp bob", now=NOW)
    r.run_text("turn on bob", now=NOW + timedelta(seconds=5))
    manifest = export(r.store, tmp_path / "export", fmt="jsonl", data_dir=r.data_dir)
    rows = [json.loads(x) for x in (tmp_path / "export" / "turns.jsonl").read_text().splitlines()]
    assert rows[-1]["taught"]["applied"][0]["phrase"] == "bob" and manifest["taught_concepts"] == 1
    concept = json.loads((tmp_path / "export" / "taught.jsonl").read_text())
    assert concept["user_pseudonym"].startswith("u_") and "alex" not in json.dumps(concept)
    opt_out(r.data_dir, "alex", r.store)
    assert TeachMemory(r.data_dir).all() == []
    rec = r.run_text("call the desk lamp sunny", now=NOW + timedelta(seconds=10))
    assert rec.action["name"] == "teach.define" and TeachMemory(r.data_dir).all() == []
    assert r.run_text("turn on sunny", now=NOW + timedelta(seconds=15)).taught is not None  # this process only


def test_the_defect_report_shows_whether_taught_concepts_work(runner):
    from types import SimpleNamespace

    from assistant.learning.labels.report import defect_report

    r = runner()
    recs = [
        r.run_text("call the floor lamp bob", now=NOW),
        r.run_text("turn on bob", now=NOW + timedelta(seconds=5)),
        r.run_text("turn off bob", now=NOW + timedelta(seconds=10)),
        r.run_text("turn on the kitchen light", now=NOW + timedelta(seconds=15)),
    ]
    labels = [
        SimpleNamespace(
            turn_id=rec.turn_id,
            goal_id="g",
            goal_index=i,
            goal_success=1.0,
            defect=0.9 if i == 2 else 0.1,
            failure_point="result" if i == 2 else None,
            stage_probs={},
        )
        for i, rec in enumerate(recs)
    ]
    r.store.write_goal_labels(labels, "test")
    rows = {x["key"]: (x["turns"], x["defects"]) for x in defect_report(r.store)["by_taught"]}
    assert rows == {"teaching": (1, 0), "use: alias": (2, 1), "(none)": (1, 0)}
