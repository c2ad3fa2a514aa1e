"""`assistant traces export`: one row per turn for training, streamed to JSONL or Parquet.

The columns, their order and types come from `export_schema.json` (next to this file; a JSON Schema with the Arrow type
of each column in `x-arrow-type`), so the file is the contract and this module cannot drift from it. SQLite (JSON1)
builds each row, including the per-turn JSON of spans and events; Python then works column-wise on a batch of 1000
turns at a time (pseudonyms, redaction, audio) and writes it out at once (Parquet: converted to Arrow straight away,
a row group per 10k rows through a ParquetWriter), so memory stays flat whatever the number of turns.

Privacy on the way out: user ids become pseudonyms, turns of opted-out users are skipped, and phone numbers and e-mail
addresses in every text field are redacted (see assistant/trace/privacy.py).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import cache, lru_cache
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError
from assistant.trace.privacy import (
    _EMAIL,
    Pseudonymizer,
    _has_spoken_phone,
    _phones,
    opted_out_pseudonyms,
    redact,
    redact_obj,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from assistant.trace.store import TraceStore

SCHEMA_PATH = Path(__file__).with_name("export_schema.json")
_TIME_COLS = frozenset({"started_at", "ended_at"})
FORMATS = ("parquet", "jsonl")


@lru_cache(maxsize=1)
def export_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def schema_version() -> int:
    return int(export_schema()["export_schema_version"])


def columns() -> list[str]:
    return list(export_schema()["x-column-order"])


def json_columns() -> frozenset[str]:
    return frozenset(k for k, v in export_schema()["properties"].items() if v.get("x-json"))


def parse_arrow_type(text: str) -> pa.DataType:
    """An Arrow type from the schema file's spelling: string, int32, int64, float64/double, bool,
    timestamp[us, tz=UTC], list<T>, struct<name: T, ...>."""
    import pyarrow as pa

    prims = {
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "double": pa.float64(),
        "bool": pa.bool_(),
        "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
    }
    text = text.strip()
    if text in prims:
        return prims[text]
    if text.startswith("list<") and text.endswith(">"):
        return pa.list_(parse_arrow_type(text[5:-1]))
    if text.startswith("struct<") and text.endswith(">"):
        fields, depth, start, body = [], 0, 0, text[7:-1]
        for i, ch in enumerate(body + ","):
            depth += ch == "<"
            depth -= ch == ">"
            if ch == "," and depth == 0:
                name, _, kind = body[start:i].partition(":")
                fields.append(pa.field(name.strip(), parse_arrow_type(kind)))
                start = i + 1
        return pa.struct(fields)
    raise ValueError(f"export schema: unknown Arrow type {text!r}")


def typed(value: Any, kind: pa.DataType) -> Any:
    """A nested JSON value as the Python value of the column's Arrow type (schema v2): structs take the keys they
    name (the rest as JSON text in `other`), an object becomes a list of {name, value} structs when the type is a
    list (a list value gives one entry per item), and any object or list where text is expected is its JSON text."""
    return converter(kind)(value)


@cache
def converter(kind: pa.DataType) -> Callable[[Any], Any]:
    """`typed` for one Arrow type, built once (the export calls it for every nested value of every turn)."""
    import pyarrow as pa

    if pa.types.is_struct(kind):
        subs = [(f.name, converter(f.type)) for f in kind if f.name != "other"]
        names = frozenset(f.name for f in kind)
        has_other = "other" in names

        def struct(v: Any) -> Any:
            if not isinstance(v, dict):
                return None
            out = {n: c(v.get(n)) for n, c in subs}
            if has_other:
                rest = {k: x for k, x in v.items() if k not in names}
                out["other"] = _dumps(rest) if rest else None
            return out

        return struct
    if pa.types.is_list(kind):
        item = kind.value_type
        conv = converter(item)
        pairs = pa.types.is_struct(item)
        key, val = (item[0].name, item[1].name) if pairs else ("", "")
        vconv = converter(item[1].type) if pairs else conv
        flatten = pairs and not pa.types.is_list(item[1].type)

        def listed(v: Any) -> Any:
            if isinstance(v, list):
                return [conv(x) for x in v]
            if pairs and isinstance(v, dict):
                return [
                    {key: k, val: vconv(x)}
                    for k, x0 in v.items()
                    for x in (x0 if flatten and isinstance(x0, list) else [x0])
                ]
            return None

        return listed
    if pa.types.is_string(kind):
        return lambda v: v if v is None or v.__class__ is str else _ENCODE(v)
    if pa.types.is_floating(kind):
        return lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if pa.types.is_integer(kind):
        return lambda v: int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if pa.types.is_boolean(kind):
        return lambda v: None if v is None else bool(v)
    return lambda v: v


def arrow_schema() -> pa.Schema:
    import pyarrow as pa

    props = export_schema()["properties"]
    fields = []
    for name in columns():
        p = props[name]
        nullable = isinstance(p["type"], list) and "null" in p["type"]
        meta = {"description": p["description"]}
        if p.get("x-json"):
            meta["encoding"] = "nested"
        fields.append(pa.field(name, parse_arrow_type(p["x-arrow-type"]), nullable=nullable, metadata=meta))
    return pa.schema(
        fields,
        metadata={
            "export_schema_version": str(schema_version()),
            "export_schema": "assistant/trace/export_schema.json",
        },
    )


# -- one turn -> one row ----------------------------------------------------------------------------------------
def _utc(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc) if ts is not None else None


class _AudioCopier:
    """Copies audio files into OUT/audio/ once each and returns their path relative to OUT."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.audio_dir = out_dir / "audio"
        self._done: dict[str, str | None] = {}
        self.copied = 0

    def __call__(self, path: str | None, name: str) -> str | None:
        if not path:
            return None
        if path in self._done:
            return self._done[path]
        src = Path(path)
        rel: str | None = None
        if src.is_file():
            dest = self.audio_dir / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            self.copied += 1
            rel = dest.relative_to(self.out_dir).as_posix()
        if name.startswith("sources/") and len(self._done) < 10_000:  # a replayed file is shared by many turns
            self._done[path] = rel
        return rel


# The row, built by SQLite (JSON1) so that Python touches each turn only to pseudonymise, redact and copy audio.
# Column order = _SQL_COLS; the JSON columns come out as JSON text.
_SQL = """
SELECT t.turn_id, t.session_id, t.seq, t.started_at, t.ended_at, s.device_id, s.user_id,
  json_extract(t.source, '$.kind'), t.source,
  json_extract(t.record, '$.wake.detected'), json_extract(t.record, '$.wake.model'),
  json_extract(t.record, '$.wake.score'), json_extract(t.record, '$.wake.offset_seconds'),
  json_extract(t.record, '$.transcript'), json_extract(t.record, '$.asr_confidence'),
  json_extract(t.record, '$.intent'), json_extract(t.record, '$.intent_confidence'),
  (SELECT json_group_array(json_object('intent', json_extract(n.value, '$[0]'), 'confidence', json_extract(n.value, '$[1]')))
     FROM spans sp, json_each(sp.output, '$.nbest') n WHERE sp.turn_id = t.turn_id AND sp.stage = 'nlu'),
  json_extract(t.record, '$.slots'), json_extract(t.record, '$.entities'),
  json_extract(t.record, '$.action.name'), json_extract(t.record, '$.action.status'), json_extract(t.record, '$.action'),
  json_extract(t.record, '$.response_text'), json_extract(t.record, '$.expects_reply'),
  json_extract(t.record, '$.error.code'), json_extract(t.record, '$.error.stage'),
  json_extract(t.record, '$.latency_ms'),
  (SELECT json_group_array(json_object('stage', stage, 'backend', backend, 'version', version, 'start_ms', start_ms,
          'end_ms', end_ms, 'input', json(input), 'output', json(output), 'confidence', confidence,
          'error_code', error_code)) FROM spans WHERE turn_id = t.turn_id),
  t.pipeline, json_remove(t.context, '$.user_id'),
  (SELECT json_group_array(json_object('type', type, 't_ms', t_ms, 'data', json(data))) FROM events
     WHERE turn_id = t.turn_id),
  l.signals, l.label, l.confidence, l.labeler_version,
  t.response_audio, coalesce(json_extract(t.record, '$.request_audio'), json_extract(t.source, '$.audio_path')),
  json_extract(t.source, '$.file'),
  g.goal_id, g.goal_index, g.goal_success, g.defect, g.failure_point, g.stage_probs, g.labeler_version,
  json_extract(t.record, '$.taught')
FROM turns t JOIN sessions s ON s.session_id = t.session_id LEFT JOIN labels l ON l.turn_id = t.turn_id
  LEFT JOIN goal_labels g ON g.turn_id = t.turn_id
WHERE t.started_at >= ?
ORDER BY t.started_at, t.seq
"""
_SQL_COLS = (
    "turn_id",
    "session_id",
    "turn_index",
    "started_at",
    "ended_at",
    "device_id",
    "user_id",
    "source_kind",
    "source",
    "wake_detected",
    "wake_model",
    "wake_score",
    "wake_offset_seconds",
    "transcript",
    "asr_confidence",
    "intent",
    "intent_confidence",
    "nbest",
    "slots",
    "entities",
    "action_name",
    "action_status",
    "action",
    "response_text",
    "expects_reply",
    "error_code",
    "error_stage",
    "latency_ms",
    "spans",
    "pipeline",
    "context",
    "events",
    "signals",
    "label",
    "label_confidence",
    "labeler_version",
    "response_audio",
    "request_audio",
    "source_file",
    "goal_id",
    "goal_index",
    "goal_success",
    "defect_probability",
    "failure_point",
    "failure_point_probs",
    "goal_labeler_version",
    "taught",
)
_REDACT_JSON = ("source", "slots", "entities", "action", "spans", "context", "events", "signals", "taught")
_BOOLS = ("wake_detected", "expects_reply")


def _rows_to_redact(col: list[Any]) -> set[int]:
    """Indices of the values holding a phone number or e-mail address, from one scan over the whole column of a batch
    (most batches hold none at all)."""
    offsets, parts, pos = [], [], 0
    for x in col:
        offsets.append(pos)
        x = x or ""
        parts.append(x)
        pos += len(x) + 1
    joined = "\x00".join(parts)
    hits = [a for a, _ in _phones(joined)]
    if "@" in joined:
        hits += [m.start() for m in _EMAIL.finditer(joined)]
    return {bisect.bisect_right(offsets, h) - 1 for h in hits}


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
"""One encoder for every nested payload (json.dumps with arguments builds a new one per call: a third of the
export's time went there)."""


def _dumps(value: Any) -> str:
    return _ENCODE(value)


def _with_pseudonym(ctx: str | None, pu: str | None) -> str | None:
    if not ctx or not ctx.startswith("{"):
        return ctx
    return '{"user_pseudonym":' + _dumps(pu) + ("}" if ctx == "{}" else "," + ctx[1:])


def _pseudonymise_action(act: Any, pseudo: Pseudonymizer) -> None:
    if not isinstance(act, dict):
        return
    params, result = act.get("params") or {}, act.get("result") or {}
    if params.get("owner") not in (None, "shared"):
        params["owner"] = pseudo(params["owner"])
    if str(act.get("name", "")).startswith("voice."):
        if params.get("name"):
            params["name"] = pseudo(params["name"])
        if str(act.get("target") or "").startswith("voice:"):
            act["target"] = "voice:" + pseudo(act["target"][len("voice:") :])
        if result.get("person"):
            result["person"] = pseudo(result["person"])


def _people_to_pseudonyms(c: dict[str, list[Any]], pseudo: Pseudonymizer) -> None:
    """Names of people that the speaker stage and the person-scoped skills put in spans and actions (who spoke, whose
    list, whose voice) become pseudonyms, like the user id (checked by a substring first: most turns have none).
    Free text (a response that greets a person by name) is left as said."""
    marks = ('"speaker"', '"owner"', '"voice.')
    for i, text in enumerate(c["spans"]):
        if text and any(m in text for m in marks):
            spans = json.loads(text)
            for s in spans:
                out = s.get("output")
                if not isinstance(out, dict):
                    continue
                if s.get("stage") == "speaker":
                    for k in ("person", "candidate"):
                        if out.get(k):
                            out[k] = pseudo(out[k])
                    if isinstance(out.get("scores"), dict):
                        out["scores"] = {pseudo(k): v for k, v in out["scores"].items()}
                elif s.get("stage") == "respond":
                    _pseudonymise_action(out.get("action"), pseudo)
            c["spans"][i] = _dumps(spans)
    for i, text in enumerate(c["action"]):
        if text and ('"owner"' in text or '"voice.' in text):
            act = json.loads(text)
            _pseudonymise_action(act, pseudo)
            c["action"][i] = _dumps(act)


def iter_rows(
    store: TraceStore,
    data_dir: Path,
    since: float | None = None,
    audio: _AudioCopier | None = None,
    batch_size: int = 1000,
    do_redact: bool = True,
) -> Iterator[dict[str, list[Any]]]:
    """Export rows a batch at a time, column-wise (column -> list of values; JSON columns as JSON text, times as unix
    seconds), without the turns of opted-out users. Column-wise, so Python does little per turn."""
    pseudo = Pseudonymizer(data_dir)
    opted_out = opted_out_pseudonyms(data_dir)
    skip = {u for u in store.distinct_users() if pseudo(u) in opted_out}
    version = schema_version()
    user_idx = _SQL_COLS.index("user_id")
    for batch in store.iter_query(_SQL, (since if since is not None else float("-inf"),), batch_size):
        if skip:
            batch = [r for r in batch if r[user_idx] not in skip]
            if not batch:
                continue
        n = len(batch)
        c: dict[str, list[Any]] = {k: list(v) for k, v in zip(_SQL_COLS, zip(*batch))}
        c["export_schema_version"] = [version] * n
        c["user_pseudonym"] = [pseudo(u) for u in c.pop("user_id")]
        c["context"] = [_with_pseudonym(x, pu) for x, pu in zip(c["context"], c["user_pseudonym"])]
        _people_to_pseudonyms(c, pseudo)
        c["nbest"] = [None if x == "[]" else x for x in c["nbest"]]
        c["wake_detected"] = [None if x is None else bool(x) for x in c["wake_detected"]]
        c["expects_reply"] = [bool(x) for x in c["expects_reply"]]
        if do_redact:
            # Spoken digit runs come from what was said: a turn whose text has one gets every column walked.
            spoken: set[int] = set()
            for k in ("transcript", "response_text"):
                if _has_spoken_phone("\x00".join(x for x in c[k] if x)):
                    spoken |= {i for i, x in enumerate(c[k]) if x and _has_spoken_phone(x)}
            for k in ("transcript", "response_text"):
                col = c[k]
                for i in _rows_to_redact(col) | spoken:
                    col[i] = redact(col[i]) if col[i] else col[i]
            for k in _REDACT_JSON:
                col = c[k]
                for i in _rows_to_redact(col) | spoken:
                    if col[i] is not None:
                        col[i] = _dumps(redact_obj(json.loads(col[i])))
        resp, req, src = c.pop("response_audio"), c.pop("request_audio"), c.pop("source_file")
        c["audio_path"], c["request_audio_path"] = [None] * n, [None] * n
        if audio is not None:
            for i, tid in enumerate(c["turn_id"]):
                c["audio_path"][i] = audio(resp[i], f"{tid}.response.wav")
                if req[i]:
                    c["request_audio_path"][i] = audio(req[i], f"{tid}.request{Path(req[i]).suffix or '.wav'}")
                elif c["source_kind"][i] == "file" and src[i]:
                    name = f"sources/{hashlib.sha256(src[i].encode()).hexdigest()[:12]}-{Path(src[i]).name}"
                    c["request_audio_path"][i] = audio(src[i], name)
        yield c


# -- writers ----------------------------------------------------------------------------------------------------
class _JsonlWriter:
    """One JSON object per line; the JSON columns' text is spliced in as nested values (not re-encoded)."""

    def __init__(self, path: Path) -> None:
        self.f = path.open("w", encoding="utf-8")
        self.json_cols = json_columns()
        self.names = columns()

    def write(self, cols: dict[str, list[Any]]) -> None:
        encoded = []
        for name in self.names:
            key = encode_basestring(name) + ":"
            col = cols[name]
            if name in self.json_cols:
                encoded.append([key + ("null" if v is None else v) for v in col])
            elif name in _TIME_COLS:
                encoded.append(
                    [
                        key + ("null" if v is None else '"' + datetime.fromtimestamp(v, timezone.utc).isoformat() + '"')
                        for v in col
                    ]
                )
            else:
                encoded.append(
                    [
                        key
                        + (
                            "null"
                            if v is None
                            else encode_basestring(v)
                            if isinstance(v, str)
                            else ("true" if v else "false")
                            if isinstance(v, bool)
                            else json.dumps(v)
                        )
                        for v in col
                    ]
                )
        self.f.write("".join("{" + ",".join(parts) + "}\n" for parts in zip(*encoded)))

    def close(self) -> None:
        self.f.close()


class _ParquetWriter:
    """Each batch of rows becomes an Arrow record batch at once (compact, outside the Python heap); a row group is
    written whenever `row_group_size` rows have accumulated."""

    def __init__(self, path: Path, row_group_size: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.schema = arrow_schema()
        self.nested = {f.name for f in self.schema if pa.types.is_nested(f.type)}
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        self.row_group_size = row_group_size
        self.pending: list[Any] = []
        self.pending_rows = 0

    def write(self, cols: dict[str, list[Any]]) -> None:
        import pyarrow.compute as pc

        arrays = []
        for f in self.schema:
            col = cols[f.name]
            if f.name in _TIME_COLS:  # unix seconds -> microseconds -> timestamp
                micros = pc.round(pc.multiply(self.pa.array(col, self.pa.float64()), 1e6))
                arrays.append(pc.cast(micros, self.pa.int64()).cast(f.type))
            elif f.name in self.nested:  # JSON text -> typed structs and lists (schema v2)
                conv, loads = converter(f.type), json.loads
                arrays.append(self.pa.array([None if v is None else conv(loads(v)) for v in col], f.type))
            else:
                arrays.append(self.pa.array(col, type=f.type))
        self.pending.append(self.pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.pending_rows += len(arrays[0])
        if self.pending_rows >= self.row_group_size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(
                self.pa.Table.from_batches(self.pending, self.schema),
                row_group_size=max(self.row_group_size, self.pending_rows),
            )
            self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


# -- the export -------------------------------------------------------------------------------------------------
def parse_since(value: str) -> float:
    """`--since`: an ISO date or date-time (local time unless it has an offset), or N days ago as `7d`."""
    v = value.strip()
    if v.endswith("d") and v[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(v[:-1]) * 86400
    try:
        return datetime.fromisoformat(v).timestamp()
    except ValueError as err:
        raise AssistantError(
            "bad-date", f"--since {value!r}: use a date like 2025-01-31, 2025-01-31T08:00 or 7d."
        ) from err


def export(
    store: TraceStore,
    out_dir: Path,
    fmt: str = "parquet",
    data_dir: Path | None = None,
    since: float | None = None,
    with_audio: bool = False,
    row_group_size: int = 10_000,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write OUT/turns.<fmt>, OUT/export_schema.json and OUT/manifest.json; returns the manifest."""
    if fmt not in FORMATS:
        raise AssistantError("bad-format", f"--format {fmt!r}: use one of {', '.join(FORMATS)}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir else store.path.parent
    path = out_dir / f"turns.{fmt}"
    tmp = path.with_name(path.name + ".partial")
    t0 = time.perf_counter()
    audio = _AudioCopier(out_dir) if with_audio else None
    writer = _ParquetWriter(tmp, row_group_size) if fmt == "parquet" else _JsonlWriter(tmp)
    n = 0
    try:
        for cols in iter_rows(store, data_dir, since, audio, batch_size):
            writer.write(cols)
            n += len(cols["turn_id"])
            if progress:
                progress(n)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    tmp.replace(path)  # a reader never sees half a file under the final name
    shutil.copyfile(SCHEMA_PATH, out_dir / "export_schema.json")
    manifest = {
        "export_schema_version": schema_version(),
        "format": fmt,
        "file": path.name,
        "rows": n,
        "since": _utc(since).isoformat() if since is not None else None,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "with_audio": with_audio,
        "audio_files": audio.copied if audio else 0,
        "seconds": round(time.perf_counter() - t0, 2),
        "columns": columns(),
    }
    manifest["taught_concepts"] = _export_taught(data_dir, out_dir / "taught.jsonl")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _export_taught(data_dir: Path, path: Path) -> int:
    """OUT/taught.jsonl: what people taught (assistant/understanding/teach/memory.py), one concept a line, with the
    teacher as a pseudonym (null: the household), opted-out users' concepts left out, the text redacted."""
    from assistant.understanding.teach.memory import TeachMemory

    pseudo = Pseudonymizer(data_dir)
    opted_out = opted_out_pseudonyms(data_dir)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for c in TeachMemory(data_dir).all():
            row = c.to_dict()
            row["user_pseudonym"] = pseudo(row.pop("user"))
            if row["user_pseudonym"] in opted_out:
                continue
            f.write(_dumps(redact_obj(row)) + "\n")
            n += 1
    return n
