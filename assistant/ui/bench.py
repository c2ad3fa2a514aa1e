"""How fast the UI's pages are on a big store: `python -m assistant.ui.bench --seed DATA_DIR/traces.db --turns 100000`.

The synthetic store is made of real turns: every turn of the seed store (fill one with `assistant replay
assistant/data/demo/*.flac --data-dir DIR`) is copied, with new ids, over many sessions, devices and users and
spread over 60 days, with signal labels and goal labels (failure points) on part of them. Then a real server
(uvicorn on 127.0.0.1) answers each page several times and the median and max times of a whole HTTP request are
printed.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sqlite3
import statistics
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

DEVICES = ("kitchen.speaker", "living_room.display", "bedroom.speaker", "office.speaker")
USERS = ("alice", "bob", "carol", "dave", "erin")
STAGES = ("asr", "nlu", "resolve", "respond", "tts")


def build_store(seed_db: Path, out_db: Path, n_turns: int, seed: int = 0, span_days: float = 60.0) -> dict[str, Any]:
    """Write `n_turns` copies of the seed store's turns into a new store at `out_db`; returns counts and seconds."""
    from assistant.trace.store import TraceStore

    t0 = time.perf_counter()
    rng = random.Random(seed)
    src = sqlite3.connect(f"file:{seed_db}?mode=ro", uri=True)
    turns = src.execute(
        "SELECT turn_id, source, transcript, intent, intent_confidence, action, response_text, "
        "response_audio, error_code, error_message, pipeline, context, record FROM turns"
    ).fetchall()
    if not turns:
        raise SystemExit(f"{seed_db} has no turns: replay something into it first")
    spans = {
        tid: src.execute(
            "SELECT idx, stage, backend, version, start_ms, end_ms, input, output, confidence, "
            "error_code FROM spans WHERE turn_id = ? ORDER BY idx",
            (tid,),
        ).fetchall()
        for tid, *_ in turns
    }
    src.close()
    out_db.parent.mkdir(parents=True, exist_ok=True)
    TraceStore(out_db).close()  # creates and migrates the schema
    db = sqlite3.connect(out_db)
    db.execute("PRAGMA synchronous = OFF")
    start = time.time() - span_days * 86400
    step = span_days * 86400 / n_turns
    i = 0
    while i < n_turns:
        sid = uuid.UUID(int=rng.getrandbits(128)).hex
        device, user = rng.choice(DEVICES), rng.choice(USERS)
        k = rng.randint(1, 6)
        t_first = start + i * step
        rows_t, rows_s, rows_l, rows_g = [], [], [], []
        for seq in range(1, k + 1):
            if i >= n_turns:
                break
            base = turns[rng.randrange(len(turns))]
            tid = uuid.UUID(int=rng.getrandbits(128)).hex
            t = start + i * step
            rec = json.loads(base[12])
            rec.update(turn_id=tid, session_id=sid)
            ctx = json.loads(base[11])
            ctx.update(device_id=device, user_id=user)
            rows_t.append(
                (
                    tid,
                    sid,
                    seq,
                    t,
                    t + 2.0,
                    base[1],
                    base[2],
                    base[3],
                    base[4],
                    base[5],
                    base[6],
                    base[7],
                    base[8],
                    base[9],
                    base[10],
                    json.dumps(ctx),
                    json.dumps(rec),
                )
            )
            jitter = rng.uniform(0.7, 1.6)
            for sp in spans[base[0]]:
                rows_s.append(
                    (tid, sp[0], sp[1], sp[2], sp[3], sp[4] * jitter, sp[5] * jitter, sp[6], sp[7], sp[8], sp[9])
                )
            r = rng.random()
            if r < 0.8:
                label = "defect" if r < 0.12 else ("ok" if r < 0.7 else "unknown")
                rows_l.append((tid, label, 0.8, "[]", "synthetic", time.time()))
                fp = rng.choice(STAGES) if label == "defect" else None
                rows_g.append(
                    (tid, sid, seq - 1, 0.3 if fp else 0.9, 0.8 if fp else 0.1, fp, "{}", "synthetic", time.time())
                )
            i += 1
        db.execute("INSERT INTO sessions VALUES (?,?,?,?,?)", (sid, device, user, t_first, rows_t[-1][3]))
        db.executemany("INSERT INTO turns VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows_t)
        db.executemany("INSERT INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows_s)
        db.executemany("INSERT INTO labels VALUES (?,?,?,?,?,?)", rows_l)
        db.executemany("INSERT INTO goal_labels VALUES (?,?,?,?,?,?,?,?,?)", rows_g)
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return {"turns": n_turns, "seed_turns": len(turns), "seconds": round(time.perf_counter() - t0, 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The UI app on a real uvicorn server in a thread (for benchmarks and tests)."""

    def __init__(self, cfg: Any) -> None:
        import uvicorn

        from assistant.ui.app import create_app

        self.app = create_app(cfg)
        self.config = uvicorn.Config(self.app, host=cfg.host, port=cfg.port, log_level="warning")
        self.server = uvicorn.Server(self.config)
        self.url = f"http://{cfg.host}:{cfg.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the UI server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def time_get(url: str, n: int = 7) -> dict[str, float]:
    """The first GET's milliseconds, then the median and max of `n` more."""
    t0 = time.perf_counter()
    urllib.request.urlopen(url, timeout=60).read()
    first = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as r:
            r.read()
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "first_ms": round(first, 1),
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
    }


PAGES = {
    "first page of turns": "/turns",
    "second page (cursor)": None,
    "filter: intent": "/turns?intent=iot_hue_lighton",
    "filter: device + label": "/turns?device=bedroom.speaker&label=defect",
    "filter: failure point": "/turns?fp=asr",
    "filter: time range": "/turns?since={day}&until={day}",
    "search: 'kitchen light'": "/turns?q=kitchen+light",
    "filter: rewrite applied": "/turns?rewrite=yes",
    "sessions": "/sessions",
    "one turn": "/turn/{turn}",
    "defects (first, then cached)": "/defects",
    "latency": "/latency",
}


def main(argv: list[str] | None = None) -> int:
    from assistant.ui.app import UiConfig
    from assistant.ui.data import Filters

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=Path, required=True, help="a trace store with real turns (traces.db)")
    p.add_argument("--turns", type=int, default=100_000)
    p.add_argument("--dir", type=Path, default=Path("/tmp/assistant-ui-bench"), help="where the big store goes")
    p.add_argument("--reuse", action="store_true", help="reuse the store in --dir if there is one")
    args = p.parse_args(argv)
    db = args.dir / "traces.db"
    if not (args.reuse and db.exists()):
        for f in args.dir.glob("traces.db*"):
            f.unlink()
        print("built", build_store(args.seed, db, args.turns))
    cfg = UiConfig(db_path=db, data_dir=args.dir, out_dir=args.dir / "out", port=free_port())
    with Server(cfg) as srv:
        reader = srv.app.state.reader
        print(
            f"{'first page, right after start':<32} {'/turns':<48} {time_get(srv.url + '/turns', 3)}"
            "  (while the search index is built)"
        )
        t0 = time.perf_counter()
        reader.sync_fts()
        print(
            f"search index of {reader.query('SELECT count(*) FROM turns')[0][0]} turns ready "
            f"{time.perf_counter() - t0:.2f} s later (built in a background thread at start)"
        )
        newest = reader.turns(Filters())
        turn = newest["turns"][0]["turn_id"]
        day = time.strftime("%Y-%m-%d", time.gmtime(newest["turns"][0]["started_at"] - 86400 * 10))
        for name, path in PAGES.items():
            if path is None:
                path = f"/turns?before={newest['next']}"
            path = path.format(turn=turn, day=day)
            print(f"{name:<32} {path:<48} {time_get(srv.url + path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
