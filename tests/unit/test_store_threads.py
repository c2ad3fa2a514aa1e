"""The trace store shared by threads, as the Wyoming server's pool and the live loop share it: several threads write
turns and read them back at once, and the store is closed while writes are still arriving. No sqlite3 connection
may be used by two threads at once (CPython's sqlite3 can crash when one is, python/cpython#146471), so every turn
written must be there and no read may fail. No models."""

from __future__ import annotations

import threading

import pytest

from assistant.errors import AssistantError
from assistant.trace.store import TraceStore, TurnTrace

THREADS = 6
TURNS = 60  # per thread


def _trace(thread: int, i: int) -> TurnTrace:
    tid = f"w{thread}-t{i:04d}"
    rec = {"turn_id": tid, "transcript": f"thread {thread} turn {i}", "intent": "x", "error": None}
    return TurnTrace(
        turn_id=tid,
        session_id=f"s{thread}",
        device_id=f"d{thread}",
        user_id="u",
        started_at=1000.0 + i,
        ended_at=1000.5 + i,
        source={"kind": "wyoming", "client": f"c{thread}"},
        pipeline={},
        context={},
        record=rec,
    )


def _run(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a thread hung on the store"


def test_threads_writing_and_reading_one_store_lose_no_turn_and_see_their_own_writes(tmp_path):
    store = TraceStore(tmp_path / "traces.db")
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 1)
    connections: dict[int, int] = {}

    def writer(n: int) -> None:
        try:
            start.wait()
            connections[n] = id(store._db)  # this thread's read connection
            for i in range(TURNS):
                store.write_turn(_trace(n, i))
                store.add_event(f"w{n}-t{i:04d}", "barge-in", {"i": i})
                # read back at once, as the session tracker does before the next turn
                assert store.last_session(f"d{n}", "u")[0] == f"s{n}"
                turns = store.list_turns(limit=3, session_id=f"s{n}")
                assert turns[0]["turn_id"] == f"w{n}-t{i:04d}"
                got = store.get_turn(turns[0]["turn_id"])
                assert got["record"]["transcript"] == f"thread {n} turn {i}"
                assert [e["type"] for e in got["events"]] == ["barge-in"]
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    def streamer() -> None:  # an export/labeller-like reader streaming the whole store meanwhile
        try:
            start.wait()
            for _ in range(5):
                seen = sum(len(b) for b in store.iter_turn_batches(order="session", batch_size=7))
                assert 0 <= seen <= THREADS * TURNS
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    _run([threading.Thread(target=writer, args=(n,)) for n in range(THREADS)] + [threading.Thread(target=streamer)])
    assert not errors, errors[:3]
    assert len(set(connections.values())) == THREADS  # one read connection per thread, never shared
    assert store.count_turns() == THREADS * TURNS
    for n in range(THREADS):
        seqs = [t["seq"] for t in store.list_turns(limit=TURNS + 1, session_id=f"s{n}")]
        assert sorted(seqs) == list(range(1, TURNS + 1))  # every turn, numbered in order within its session
    store.close()
    again = TraceStore(tmp_path / "traces.db")
    assert again.count_turns() == THREADS * TURNS
    assert sum(len(b) for b in again.iter_turn_batches()) == THREADS * TURNS
    again.close()


def test_closing_while_threads_write_and_read_loses_no_committed_turn_and_fails_cleanly_after(tmp_path):
    """The server's shutdown: the runner closes the store while the pool may still be tracing a request."""
    store = TraceStore(tmp_path / "traces.db")
    written = [0] * THREADS
    unexpected: list[BaseException] = []
    go = threading.Event()

    def writer(n: int) -> None:
        go.wait()
        for i in range(TURNS * 10):
            try:
                store.write_turn(_trace(n, i))
                written[n] += 1
                store.list_turns(limit=2, session_id=f"s{n}")
                store.get_turn(f"w{n}-t{i:04d}")
            except AssistantError as err:
                if err.code != "trace-store-closed":
                    unexpected.append(err)
                return
            except BaseException as err:  # noqa: BLE001
                unexpected.append(err)
                return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    go.set()
    while sum(written) < THREADS * 5:  # every writer is busy
        threading.Event().wait(0.005)
    store.close()
    for t in threads:
        t.join(60)
    assert not unexpected, unexpected[:3]
    assert sum(written) < THREADS * TURNS * 10  # the close really came in the middle
    with pytest.raises(AssistantError) as err:
        store.write_turn(_trace(99, 0))
    assert err.value.code == "trace-store-closed"
    with pytest.raises(AssistantError):
        store.count_turns()
    store.close()  # twice is fine
    again = TraceStore(tmp_path / "traces.db")
    assert again.count_turns() == sum(written)  # every write that returned is there, nothing half-written
    again.close()
