"""`assistant ui`: a local web app over the trace store. Starlette (routes, forms, static files) + Jinja2 templates
(server-rendered HTML) + htmx (vendored: the filters refresh the list in place); plots are SVG drawn here.

Security: the server binds to 127.0.0.1 by default; on any other address every request needs the token printed at
start (`?token=...` once, then a cookie). Requests whose Host header is not this server's are refused (DNS
rebinding), every form carries a per-process CSRF token, audio is served only from files inside the data dir, the
out dir or an --audio-root (paths come from the store, never from the URL; resolved, symlinks included), and the
turns of opted-out users are never shown.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.ui import plots
from assistant.ui.data import COUNT_CAP, PAGE_SIZE, Filters, Reader, parse_time

STATIC = Path(__file__).parent / "static"
DEMO_AUDIO = Path(__file__).resolve().parents[1] / "data" / "demo"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
COOKIE = "assistant_ui_token"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")


@dataclass
class UiConfig:
    db_path: Path
    data_dir: Path
    out_dir: Path = Path("out")
    host: str = "127.0.0.1"
    port: int = 8770
    audio_roots: list[Path] = field(default_factory=list)
    token: str | None = None  # required on every request when set (any non-local host)

    def roots(self) -> list[Path]:
        out = []
        for p in (self.data_dir, self.out_dir, DEMO_AUDIO, *self.audio_roots):
            try:
                out.append(Path(p).resolve())
            except OSError:
                continue
        return out


def needs_token(host: str) -> bool:
    return host not in ("127.0.0.1", "localhost", "::1")


def inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def safe_file(raw: Any, roots: list[Path]) -> Path | None:
    """The file `raw` names (a path from the store), when it is an audio file inside one of `roots`; else None."""
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        return None
    try:
        p = Path(raw).resolve()
    except (OSError, RuntimeError):
        return None
    if p.suffix.lower() not in AUDIO_SUFFIXES or not inside(p, roots) or not p.is_file():
        return None
    return p


# -- formatting helpers for the templates --------------------------------------------------------------------
def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _ms(v: Any) -> str:
    if v is None:
        return ""
    v = float(v)
    return f"{v:,.0f} ms" if abs(v) >= 10 else f"{v:.1f} ms"


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return ""
    try:
        return f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return str(v)


def _pretty(v: Any) -> str:
    return json.dumps(v, indent=1, ensure_ascii=False, default=str)


def _short(v: Any, n: int = 8) -> str:
    return str(v)[:n] if v else ""


class Security:
    """Token (when bound beyond localhost) and CSRF checks, as plain ASGI middleware."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token:
            await self.app(scope, receive, send)
            return
        req = Request(scope)
        given = req.query_params.get("token")
        if given is not None and secrets.compare_digest(given, self.token):
            q = urlencode([(k, v) for k, v in req.query_params.multi_items() if k != "token"])
            resp: Response = RedirectResponse(req.url.path + (f"?{q}" if q else ""), status_code=303)
            resp.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            await resp(scope, receive, send)
            return
        if secrets.compare_digest(req.cookies.get(COOKIE, ""), self.token):
            await self.app(scope, receive, send)
            return
        await PlainTextResponse("401: open the address with ?token=... printed by `assistant ui`.", status_code=401)(
            scope, receive, send
        )


def _headers(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def create_app(cfg: UiConfig) -> Starlette:
    reader = Reader(cfg.db_path, cfg.data_dir)
    roots = cfg.roots()
    csrf = secrets.token_urlsafe(24)
    env = Environment(loader=PackageLoader("assistant.ui", "templates"), autoescape=select_autoescape(["html"]))
    env.filters.update(when=_when, ms=_ms, num=_num, pretty=_pretty, short=_short)
    env.globals.update(csrf=csrf, PAGE_SIZE=PAGE_SIZE, COUNT_CAP=COUNT_CAP)
    write_lock = threading.Lock()
    cache: dict[str, tuple[Any, Any]] = {}

    def render(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        html = env.get_template(name).render(request=request, path=request.url.path, **ctx)
        return _headers(HTMLResponse(html, status_code=status))

    def not_found(request: Request, what: str) -> Response:
        return render(request, "message.html", 404, title="Not found", message=what)

    def data_version() -> tuple[Any, ...]:
        return tuple(
            reader.query(
                "SELECT (SELECT coalesce(max(rowid), 0) FROM turns), (SELECT count(*) FROM turns), "
                "(SELECT coalesce(max(rowid), 0) FROM goal_labels), (SELECT coalesce(max(rowid), 0) FROM labels), "
                "(SELECT coalesce(max(event_id), 0) FROM events)"
            )[0]
        ) + (tuple(reader.hidden_users()),)

    def cached(key: str, fn: Any) -> Any:
        ver = data_version()
        hit = cache.get(key)
        if hit and hit[0] == ver:
            return hit[1]
        value = fn()
        cache[key] = (ver, value)
        return value

    def open_store() -> Any:
        from assistant.trace.store import TraceStore

        return TraceStore(cfg.db_path)

    async def check_csrf(request: Request) -> dict[str, str] | None:
        form = await request.form()
        origin = request.headers.get("origin")
        if origin and origin != "null":
            host = origin.split("://", 1)[-1]
            if host != request.headers.get("host"):
                return None
        if not secrets.compare_digest(str(form.get("csrf", "")), csrf):
            return None
        return {k: str(v) for k, v in form.items()}

    # -- pages ------------------------------------------------------------------------------------------------
    async def home(request: Request) -> Response:
        return RedirectResponse("/turns", status_code=302)

    def turns_page(request: Request) -> Response:
        f = Filters.from_query(request.query_params)
        t0 = time.perf_counter()
        page = reader.turns(f, request.query_params.get("before"))
        total = reader.count(f)
        ms = (time.perf_counter() - t0) * 1000
        ctx = {
            "f": f,
            "page": page,
            "total": total,
            "query_ms": ms,
            "facets": reader.facets(),
            "fts": reader.fts5,
            "title": "Turns",
        }
        if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
            return render(request, "_turn_rows.html", **ctx)
        return render(request, "turns.html", **ctx)

    def sessions_page(request: Request) -> Response:
        before = request.query_params.get("before")
        try:
            b = float(before) if before else None
        except ValueError:
            b = None
        return render(request, "sessions.html", title="Sessions", page=reader.sessions(b))

    def turn_page(request: Request) -> Response:
        t = reader.turn(request.path_params["turn_id"])
        if t is None:
            return not_found(request, "No such turn (or its user opted out).")
        req_audio = request_audio(t) is not None
        resp_audio = safe_file(t["response_audio"] or t["record"].get("response_audio"), roots) is not None
        spans = {s["stage"]: s for s in t["spans"]}
        nlu_out = (spans.get("nlu") or {}).get("output") or {}
        rerank_out = (spans.get("rerank") or {}).get("output") or {}
        rewrite_out = (spans.get("rewrite") or {}).get("output") or {}
        return render(
            request,
            "turn.html",
            title=f"Turn {t['turn_id'][:8]}",
            t=t,
            req_audio=req_audio,
            resp_audio=resp_audio,
            nbest=nlu_out.get("nbest") or [],
            rerank=rerank_out,
            rewrite=rewrite_out,
            marked=request.query_params.get("marked"),
        )

    def defects_page(request: Request) -> Response:
        from assistant.learning.labels.report import defect_report

        since_s = request.query_params.get("since") or ""
        stage = request.query_params.get("stage") or ""
        since = parse_time(since_s)
        rep = cached(f"defects:{since}", lambda: defect_report(reader, since, top=10))
        fallback = None
        if not rep["turns"]:
            fallback = cached(f"labels:{since}", lambda: reader.label_summary(since))
        src = rep if rep["turns"] else fallback
        chart = None
        if src and src["turns"]:
            days = src["by_day"]
            chart = plots.line_chart(
                {"defect rate": [(d["key"], d["defect_rate"]) for d in days]},
                y_label="defect rate per day",
                percent=True,
                y_max=min(1.0, plots.nice_max(max((d["defect_rate"] or 0) for d in days) or 0.01)),
            )
        top = rep.get("top_failing_requests") or {}
        if stage:
            top = {k: v for k, v in top.items() if k == stage}
        return render(
            request,
            "defects.html",
            title="Defects",
            rep=rep,
            fallback=fallback,
            chart=chart,
            top=top,
            since=since_s,
            stage=stage,
            stages=[s["stage"] for s in rep.get("by_stage") or []],
        )

    def latency_page(request: Request) -> Response:
        since_s = request.query_params.get("since") or ""
        rows, chart = cached(f"latency:{parse_time(since_s)}", lambda: latency_view(parse_time(since_s)))
        return render(request, "latency.html", title="Latency", rows=rows, chart=chart, since=since_s)

    def latency_view(since: float | None) -> tuple[list[dict[str, Any]], Any]:
        lat = reader.latency(since)
        rows: list[dict[str, Any]] = []
        series_p50: dict[str, list[tuple[str, float | None]]] = {}
        for stage, pts in lat.items():
            vals = sorted(v for _, v in pts)
            rows.append(
                {
                    "stage": stage,
                    "n": len(vals),
                    "p50": plots.quantile(vals, 0.5),
                    "p90": plots.quantile(vals, 0.9),
                    "p99": plots.quantile(vals, 0.99),
                    "max": vals[-1],
                    "hist": plots.histogram(vals),
                }
            )
        # medians over time, in up to 24 time buckets over the sample, for the slow stages
        all_ts = [ts for pts in lat.values() for ts, _ in pts]
        chart = None
        if all_ts:
            lo, hi = min(all_ts), max(all_ts)
            nb = 24 if hi > lo else 1
            width = (hi - lo) / nb if hi > lo else 1.0
            for stage in [r["stage"] for r in sorted(rows, key=lambda r: -(r["p50"] or 0))[:4]]:
                buckets: dict[int, list[float]] = {}
                for ts, v in lat[stage]:
                    buckets.setdefault(min(nb - 1, int((ts - lo) / width)), []).append(v)
                series_p50[stage] = [
                    (_when(lo + b * width)[5:16], plots.quantile(sorted(vs), 0.5)) for b, vs in sorted(buckets.items())
                ]
            chart = plots.line_chart(series_p50, y_label="median ms", width=720)
        return rows, chart

    def learning_page(request: Request) -> Response:
        from assistant.learning import markov, retrieval

        vers = markov.versions(cfg.data_dir)
        cur = markov.current_version(cfg.data_dir)
        show = request.query_params.get("v")
        shown = int(show) if show and show.isdigit() else (cur or (vers[-1] if vers else None))
        tables = []
        for v in reversed(vers):
            doc = markov.load_table(cfg.data_dir, v) or {}
            tables.append(
                {
                    "version": v,
                    "created_at": doc.get("created_at"),
                    "rewrites": len(doc.get("rewrites") or {}),
                    "stats": doc.get("stats") or {},
                    "params": doc.get("params") or {},
                }
            )
        shown_doc = markov.load_table(cfg.data_dir, shown) if shown else None
        meta_path = Path(cfg.data_dir) / retrieval.INDEX_DIR / "meta.json"
        index_meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        use = cached("rewrite_use", reader.rewrite_use)
        return render(
            request,
            "learning.html",
            title="Learning",
            tables=tables,
            current=cur,
            shown=shown,
            shown_doc=shown_doc,
            index_meta=index_meta,
            use=use,
            done=request.query_params.get("done"),
        )

    def privacy_page(request: Request) -> Response:
        hidden = set(reader.hidden_users())
        counts = dict(reader.query("SELECT user_id, count(*) FROM sessions GROUP BY user_id"))
        users = sorted(
            ({"pseudonym": p, "sessions": counts.get(u, 0)} for u, p in reader.users().items() if u not in hidden),
            key=lambda d: d["pseudonym"],
        )
        return render(
            request,
            "privacy.html",
            title="Privacy",
            users=users,
            hidden=len(hidden),
            done=request.query_params.get("done"),
        )

    # -- audio --------------------------------------------------------------------------------------------
    def request_audio(t: dict[str, Any]) -> Path | tuple[Path, float, float] | None:
        rec, src = t["record"], t["source"]
        for raw in (rec.get("request_audio"), src.get("audio_path")):
            p = safe_file(raw, roots)
            if p:
                return p
        for r in roots:  # an export made with --with-audio: OUT/audio/<turn>.request.*
            for suffix in AUDIO_SUFFIXES:
                p = safe_file(str(r / "audio" / f"{t['turn_id']}.request{suffix}"), roots)
                if p:
                    return p
        if src.get("kind") == "file":
            p = safe_file(src.get("file"), roots)
            if p and src.get("offset_seconds") is not None:
                start = float(src.get("offset_seconds") or 0.0)
                end = float(src.get("end_seconds") or start + 30.0)
                return (p, start, min(end, start + 60.0))
        return None

    def audio(request: Request) -> Response:
        t = reader.turn(request.path_params["turn_id"])
        if t is None:
            return PlainTextResponse("not found", status_code=404)
        kind = request.path_params["kind"]
        if kind == "response":
            p = safe_file(t["response_audio"] or t["record"].get("response_audio"), roots)
            return FileResponse(p) if p else PlainTextResponse("no response audio", status_code=404)
        if kind == "request":
            found = request_audio(t)
            if found is None:
                return PlainTextResponse("no request audio", status_code=404)
            if isinstance(found, Path):
                return FileResponse(found)
            return Response(_segment_wav(*found), media_type="audio/wav")
        return PlainTextResponse("not found", status_code=404)

    # -- actions (POST, confirmed) ------------------------------------------------------------------------
    async def feedback(request: Request) -> Response:
        from assistant.learning.feedback import record_feedback

        form = await check_csrf(request)
        if form is None:
            return PlainTextResponse("403: bad form token", status_code=403)
        t = reader.turn(request.path_params["turn_id"])
        if t is None:
            return not_found(request, "No such turn.")
        answer = {"right": "yes", "wrong": "no"}.get(form.get("mark", ""))
        if answer is None:
            return PlainTextResponse("400: mark must be right or wrong", status_code=400)
        if form.get("confirm") != "yes":
            return render(
                request,
                "confirm.html",
                title="Confirm",
                action=f"/turn/{t['turn_id']}/feedback",
                fields={"mark": form["mark"]},
                question=f"Mark turn {t['turn_id'][:8]} (\u201c{t['record'].get('transcript') or ''}\u201d) "
                f"as {form['mark']}? This stores an explicit feedback signal in the trace store.",
                button=f"Yes, mark it {form['mark']}",
                back=f"/turn/{t['turn_id']}",
            )
        with write_lock:
            store = open_store()
            try:
                record_feedback(store, t["turn_id"], answer, reply_text=f"marked {form['mark']} in assistant ui")
            finally:
                store.close()
        return RedirectResponse(f"/turn/{t['turn_id']}?marked={form['mark']}", status_code=303)

    async def rollback(request: Request) -> Response:
        from assistant.errors import AssistantError
        from assistant.learning import markov

        form = await check_csrf(request)
        if form is None:
            return PlainTextResponse("403: bad form token", status_code=403)
        try:
            version = int(form.get("version", ""))
        except ValueError:
            return PlainTextResponse("400: version", status_code=400)
        if form.get("confirm") != "yes":
            what = f"make rewrite table v{version} current" if version else "turn precomputed rewriting off (version 0)"
            return render(
                request,
                "confirm.html",
                title="Confirm",
                action="/learning/rollback",
                fields={"version": str(version)},
                question=f"Roll back: {what}?",
                button="Yes, roll back",
                back="/learning",
            )
        try:
            with write_lock:
                markov.rollback(cfg.data_dir, version)
        except AssistantError as err:
            return render(request, "message.html", 400, title="Not rolled back", message=err.message)
        return RedirectResponse(f"/learning?done=rolled+back+to+v{version}", status_code=303)

    async def delete_user(request: Request) -> Response:
        from assistant.trace.privacy import opt_in, opt_out

        form = await check_csrf(request)
        if form is None:
            return PlainTextResponse("403: bad form token", status_code=403)
        pseudonym = form.get("user", "")
        uid = reader.user_for_pseudonym(pseudonym)
        if uid is None or uid in reader.hidden_users():
            return not_found(request, "No such user.")
        stop = form.get("stop_recording") == "on"
        if form.get("confirm") != "yes":
            fields = {"user": pseudonym}
            if stop:
                fields["stop_recording"] = "on"
            return render(
                request,
                "confirm.html",
                title="Confirm",
                action="/privacy/delete",
                fields=fields,
                question=f"Delete every turn of user {pseudonym} (traces, labels and their audio files)"
                + (" and record nothing for them from now on" if stop else "")
                + "? This cannot be "
                "undone.",
                button="Yes, delete",
                back="/privacy",
                danger=True,
            )
        with write_lock:
            store = open_store()
            try:
                deleted = opt_out(cfg.data_dir, uid, store)
                if not stop:
                    opt_in(cfg.data_dir, uid)
            finally:
                store.close()
        reader.sync_fts()
        return RedirectResponse(f"/privacy?done=deleted+{deleted}+turns", status_code=303)

    routes = [
        Route("/", home),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/turns", turns_page),
        Route("/sessions", sessions_page),
        Route("/turn/{turn_id}", turn_page),
        Route("/turn/{turn_id}/feedback", feedback, methods=["POST"]),
        Route("/audio/{turn_id}/{kind}", audio),
        Route("/defects", defects_page),
        Route("/latency", latency_page),
        Route("/learning", learning_page),
        Route("/learning/rollback", rollback, methods=["POST"]),
        Route("/privacy", privacy_page),
        Route("/privacy/delete", delete_user, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    hosts = list(LOCAL_HOSTS) + ([cfg.host] if cfg.host not in LOCAL_HOSTS else [])
    if cfg.host in ("0.0.0.0", "::"):
        hosts = ["*"]  # any address of this machine; the token still guards every request
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts), Middleware(Security, token=cfg.token)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        reader.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.reader = reader
    app.state.csrf = csrf

    def warm_up() -> None:
        # The filter menus and the search index, before the first visit needs them. The defect report and the
        # latency view are not warmed: they are pure Python over every labelled turn (about 2 s and 1 s at 100k
        # turns), and holding the GIL that long would slow the turn list right after start.
        reader.facets()
        reader.sync_fts()

    threading.Thread(target=warm_up, name="ui-index", daemon=True).start()
    return app


def _segment_wav(path: Path, start: float, end: float) -> bytes:
    """[start, end) seconds of an audio file as a WAV (a replayed recording holds many turns)."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        f.seek(min(int(start * sr), f.frames))
        data = f.read(max(0, int((end - start) * sr)), dtype="int16")
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def serve(cfg: UiConfig) -> None:
    import uvicorn

    app = create_app(cfg)
    url = f"http://{cfg.host if ':' not in cfg.host else f'[{cfg.host}]'}:{cfg.port}/"
    print(f"assistant ui: {cfg.db_path}  ->  {url}" + (f"?token={cfg.token}" if cfg.token else ""), flush=True)
    if cfg.token:
        print("Bound beyond localhost: every request needs that token (then a cookie).", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
