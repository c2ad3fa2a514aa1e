"""A process that writes or reads the trace store, for the concurrency and crash tests (run as a script).

    python store_worker.py writer DB DATA_DIR SECONDS MAX_TURNS LOG [PACE]   # runner turns (fake NLU) -> DB
    python store_worker.py reader DB SECONDS LOG                      # list / show / stream / count, in a loop
    python store_worker.py labeller DB SECONDS LOG OUT                # label_store + JSONL export (writes labels)
    python store_worker.py tables DATA_DIR LOG                        # learning: rewrite table versions, forever
    python store_worker.py opener DB AT LOG                           # open (create, migrate) at time AT, write

A writer appends each turn id to LOG once `Runner.run` has returned (the turn is complete): the tests check that every
id in LOG is in the store. Failures are written to LOG as `ERROR ...` lines.
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
from pathlib import Path


class FakeNlu:
    name, version = "fake-nlu", "1"

    def parse(self, text, context=None):
        from assistant.core.stages.nlu import NluResult, Slot

        return NluResult(
            text=text,
            intent="iot_hue_lighton",
            confidence=0.97,
            slots=(Slot("house_place", "kitchen"),),
            nbest=(("iot_hue_lighton", 0.97),),
        )


class EchoResponder:
    name, version = "echo", "1"

    def respond(self, nlu, resolved, ctx):
        from assistant.core.stages.respond import Action, Response

        return Response(text=f"You said {nlu.text}.", action=Action("none", "done"))


def make_runner(db: Path, data_dir: Path):
    from assistant.config import DEFAULT_HOME, load_settings
    from assistant.core import registry
    from assistant.core.runner import Runner

    registry.register("nlu", "fake-store-test", lambda build: FakeNlu())
    registry.register("respond", "echo-store-test", lambda build: EchoResponder())
    s = load_settings()
    s = s.model_copy(
        update={
            "stages": ["nlu", "respond"],
            "nlu": s.nlu.model_copy(update={"backend": "fake-store-test"}),
            "respond": s.respond.model_copy(update={"backend": "echo-store-test"}),
            "traces": s.traces.model_copy(update={"db": str(db)}),
            "feedback": s.feedback.model_copy(update={"ask_rate": 0.0}),
        }
    )
    return Runner(s, DEFAULT_HOME, data_dir=data_dir)


def writer(db: Path, data_dir: Path, seconds: float, max_turns: int, log: Path, pace: float = 0.0) -> None:
    """`pace`: a random pause of 0..2*pace seconds after each turn (people do not speak back to back)."""
    runner = make_runner(db, data_dir)
    deadline = time.monotonic() + seconds
    n = 0
    with log.open("a", buffering=1) as out:
        while time.monotonic() < deadline and n < max_turns:
            rec = runner.run_text(f"turn on the kitchen light {os.getpid()} {n}")
            events = [e["type"] for e in (rec.get("events") or [])]
            if "trace-not-saved" in events or rec.get("error"):
                out.write(f"ERROR turn {rec['turn_id']}: {rec.get('error')} {events}\n")
            out.write(rec["turn_id"] + "\n")  # one write(2) of a whole line: a kill cannot split it
            n += 1
            if pace:
                time.sleep(random.uniform(0, 2 * pace))
    runner.close()


def reader(db: Path, seconds: float, log: Path) -> None:
    from assistant.trace.store import TraceStore

    deadline = time.monotonic() + seconds
    ops = 0
    with log.open("a", buffering=1) as out:
        store = TraceStore(db)
        while time.monotonic() < deadline:
            try:
                if random.random() < 0.1:  # a new process opening the store (the UI, `traces list`)
                    store.close()
                    store = TraceStore(db)
                rows = store.list_turns(20)
                for r in rows[:3]:
                    turn = store.get_turn(r["turn_id"])
                    if turn is None or [s["stage"] for s in turn["spans"]] != ["nlu", "respond"]:
                        out.write(f"ERROR half turn {r['turn_id']}: {turn and turn['spans']}\n")
                n = sum(len(b) for b in store.iter_turn_batches(batch_size=200))
                if n < len(rows):
                    out.write(f"ERROR streamed {n} < listed {len(rows)}\n")
                store.count_turns()
                ops += 1
            except Exception:  # noqa: BLE001 - every failure is a test failure, written where the test reads it
                out.write("ERROR " + traceback.format_exc().replace("\n", " | ") + "\n")
        out.write(f"OPS {ops}\n")
        store.close()


def labeller(db: Path, seconds: float, log: Path, out_dir: Path) -> None:
    from assistant.learning.signals import label_store
    from assistant.trace.export import export
    from assistant.trace.store import TraceStore

    deadline = time.monotonic() + seconds
    ops = 0
    with log.open("a", buffering=1) as out:
        while time.monotonic() < deadline:
            try:
                store = TraceStore(db)
                label_store(store)
                export(store, out_dir, "jsonl", data_dir=db.parent)
                store.close()
                ops += 1
            except Exception:  # noqa: BLE001
                out.write("ERROR " + traceback.format_exc().replace("\n", " | ") + "\n")
        out.write(f"OPS {ops}\n")


def tables(data_dir: Path, log: Path) -> None:
    """Write ever bigger rewrite tables (slow enough to be killed mid-write); log each version made current."""
    from assistant.learning.markov import write_table

    i = 0
    with log.open("a", buffering=1) as out:
        while True:
            i += 1
            table = {
                f"utterance {k} of version {i}": {
                    "target": f"target {k}",
                    "probability": 0.9,
                    "baseline": 0.1,
                    "support": 3,
                    "users": 2,
                }
                for k in range(20000)
            }
            version = write_table(data_dir, table)
            out.write(f"{version}\n")


def opener(db: Path, at: float, log: Path) -> None:
    """Open the store at wall-clock time `at` (many processes at the same instant), then write one turn."""
    from assistant.trace.store import TraceStore, TurnTrace

    time.sleep(max(0.0, at - time.time()))
    with log.open("a", buffering=1) as out:
        try:
            store = TraceStore(db)
            tid = f"{os.getpid()}-{time.time_ns()}"
            store.write_turn(
                TurnTrace(tid, "s", "d", "u", time.time(), time.time(), {"kind": "text"}, {}, {}, {"turn_id": tid})
            )
            store.close()
            out.write(tid + "\n")
        except Exception:  # noqa: BLE001
            out.write("ERROR " + traceback.format_exc().replace("\n", " | ") + "\n")


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "writer":
        writer(
            Path(rest[0]),
            Path(rest[1]),
            float(rest[2]),
            int(rest[3]),
            Path(rest[4]),
            float(rest[5]) if len(rest) > 5 else 0.0,
        )
    elif mode == "reader":
        reader(Path(rest[0]), float(rest[1]), Path(rest[2]))
    elif mode == "labeller":
        labeller(Path(rest[0]), float(rest[1]), Path(rest[2]), Path(rest[3]))
    elif mode == "opener":
        opener(Path(rest[0]), float(rest[1]), Path(rest[2]))
    elif mode == "tables":
        tables(Path(rest[0]), Path(rest[1]))
    else:
        sys.exit(f"unknown mode {mode}")
