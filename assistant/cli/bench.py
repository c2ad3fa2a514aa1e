"""`assistant bench`: latency per stage and end to end, real-time factors, throughput and memory on this machine.

A benchmark, not a test: it reports what it measured and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from assistant.bench.replay import measure
from assistant.cli.common import add_pipeline_options
from assistant.config import load_settings


def register(sub) -> None:
    p = sub.add_parser("bench", help="replay fixed clips and report latency, real-time factors and memory")
    p.add_argument("files", nargs="*", type=Path, help="recordings with wake words (default: the bundled demo)")
    p.add_argument("--rounds", type=int, default=2, help="replay the set this many times (default 2)")
    p.add_argument(
        "--catalog-entries",
        type=int,
        default=100_000,
        help="size of the catalog for the entity lookup benchmark (0 skips it; default 100000)",
    )
    p.add_argument(
        "--endpointing",
        action="store_true",
        help="instead: silence-only vs semantic endpointing side by side (waits, false cut-offs)",
    )
    p.add_argument(
        "--versus",
        nargs="+",
        type=Path,
        metavar="PROFILE",
        help="also replay with each of these profiles (over pipeline.yaml) and print them side by side with the "
        "base settings, as ratios to it (e.g. hardware/quick-turns.yaml)",
    )
    p.add_argument("--pause", type=float, default=0.24, help="speculative pause for --endpointing (seconds)")
    p.add_argument(
        "--speakers",
        action="store_true",
        help="instead: speaker identification on real and synthetic voices (accuracy, false accepts, EER, cost)",
    )
    p.add_argument(
        "--wake",
        action="store_true",
        help="instead: wake word backends side by side (idle CPU, detection rate, false wakes per hour)",
    )
    p.add_argument(
        "--wake-backends",
        default="cascade,microwakeword,openwakeword,openwakeword+gate",
        help="for --wake (comma-separated; +gate: openwakeword behind an energy gate at --gate-dbfs)",
    )
    p.add_argument("--gate-dbfs", type=float, default=-50.0, help="energy gate level for openwakeword+gate")
    p.add_argument("--negative-minutes", type=float, default=60.0, help="non-wake speech for --wake (minutes)")
    p.add_argument("--idle-seconds", type=float, default=60.0, help="quiet-room audio for --wake idle CPU")
    p.add_argument(
        "--asr-models",
        default=None,
        help="instead: these recognisers side by side, e.g. tiny.en,base or tiny.en@window=0,tiny.en@window=5 "
        "(WER and decode latency per request; @window=N@margin=M: asr.window_seconds, asr.window_margin_seconds)",
    )
    p.add_argument(
        "--sentences", type=int, default=100, help="SLURP test sentences (Piper and espeak-ng) for --asr-models"
    )
    p.add_argument("--voices", default="piper,espeak", help="voices for the SLURP sentences of --asr-models")
    add_pipeline_options(p)
    p.set_defaults(func=run)


def run_asr_models(args: argparse.Namespace) -> int:
    from assistant.backends.nlu.onnx_joint import OnnxJointNlu
    from assistant.bench.asr_models import compare, parse_variant
    from assistant.cli.common import UsageError
    from assistant.config import shared_data_dir
    from assistant.core import registry

    settings = load_settings(args.config, args.profile)
    specs = [m for m in args.asr_models.split(",") if m]
    try:
        variants = {spec: parse_variant(spec) for spec in specs}
    except ValueError as err:
        raise UsageError(f"--asr-models: {err}") from err

    def make(spec: str):
        model, update = variants[spec]
        asr = settings.asr.model_copy(update={"model": model, **update})
        return registry.create("asr", asr.backend, registry.Build(settings=settings.model_copy(update={"asr": asr})))

    res = compare(
        make,
        specs,
        shared_data_dir() / "speech",
        shared_data_dir() / "slurp" / "test.jsonl",
        sentences=args.sentences,
        progress=(lambda m: None) if args.json else (lambda m: print(m, flush=True)),
        nlu=OnnxJointNlu(),  # models/nlu
        voices=tuple(v for v in args.voices.split(",") if v),
    )
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    table = Table(title=f"recognisers side by side ({settings.asr.threads} threads, beam {settings.asr.beam_size})")
    for col in ("model", "set", "n", "WER", "intent acc", "median ms", "p90 ms", "mean audio s", "mean window s"):
        table.add_column(col)
    for model, r in res["models"].items():
        for kind, s in r.items():
            if not isinstance(s, dict) or not s.get("n") or "mean_wer" not in s:
                continue
            table.add_row(
                model,
                kind,
                str(s["n"]),
                f"{s['mean_wer']:.3f}",
                "" if s["intent_accuracy"] is None else f"{s['intent_accuracy']:.3f}",
                f"{s['latency_ms_median']:.0f}",
                f"{s['latency_ms_p90']:.0f}",
                f"{s['audio_seconds_mean']:.1f}",
                "" if s["window_seconds_mean"] is None else f"{s['window_seconds_mean']:.1f}",
            )
    Console().print(table)
    return 0


def run_wake(args: argparse.Namespace) -> int:
    import os

    from assistant.bench.wake import compare
    from assistant.config import shared_data_dir
    from assistant.core import registry

    settings = load_settings(args.config, args.profile)

    def factory(name: str):
        backend, _, option = name.partition("+")
        gate = args.gate_dbfs if option == "gate" else None

        def make(models: list[str]):
            wake = settings.wake.model_copy(update={"backend": backend, "models": models, "energy_gate_dbfs": gate})
            build = registry.Build(settings=settings.model_copy(update={"wake": wake}))
            return registry.create("wake", backend, build)

        return make

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voice-assistant" / "bench-wake"
    res = compare(
        {name: factory(name) for name in args.wake_backends.split(",") if name},
        shared_data_dir() / "speech",
        shared_data_dir() / "slurp" / "test.jsonl",
        models=list(settings.wake.models),
        threshold=settings.wake.threshold,
        refractory_s=settings.wake.refractory_seconds,
        negative_minutes=args.negative_minutes,
        idle_seconds=args.idle_seconds,
        cache_dir=cache,
        progress=(lambda m: None) if args.json else (lambda m: print(m, flush=True)),
    )
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    table = Table(title=f"wake word backends (threshold {res['threshold']}, {res['non_wake']['hours']} h non-wake)")
    for col in ("backend", "idle CPU % core", "4 models", "real clips", "synthetic", "false wakes/h", "speech CPU"):
        table.add_column(col)
    for name, r in res["backends"].items():
        dr, ds = r["detection_real"], r["detection_synthetic"]
        table.add_row(
            name,
            f"{r['idle_cpu_percent_of_one_core']:.2f} ({len(res['idle_models'])} models)",
            f"{r['idle_cpu_percent_all_four_models']:.2f}",
            f"{dr['detected']}/{dr['clips']}",
            f"{ds['detected']}/{ds['clips']}",
            f"{r['false_wakes_per_hour']:.2f} ({r['false_wakes']})",
            f"{r['speech_cpu_percent_all_four_models']:.2f}",
        )
    Console().print(table)
    for name, r in res["backends"].items():
        missed = {**r["detection_real"]["missed"], **r["detection_synthetic"]["missed"]}
        if missed:
            print(f"{name} missed: {missed}")
        if r["false_wakes"]:
            print(f"{name} false wakes by model: {r['false_wakes_by_model']}")
    return 0


def run_endpointing(args: argparse.Namespace) -> int:
    import tempfile

    from assistant.bench.endpointing import compare
    from assistant.config import shared_data_dir
    from assistant.core.runner import Runner

    settings = load_settings(args.config, args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(settings, args.home, data_dir=Path(tmp))
        res = compare(
            runner,
            shared_data_dir() / "speech",
            pause_seconds=args.pause,
            progress=None if args.json else lambda m: print(m, flush=True),
        )
        runner.close()
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    b, s = res["silence_only"], res["semantic"]
    print(f"\n{res['sources']} sources; speculative pause {res['pause_seconds']} s")
    print(
        f"silence only: {b['requests']} requests, endpoint wait median {b['endpoint_wait_ms_median']} ms "
        f"(p90 {b['endpoint_wait_ms_p90']})"
    )
    print(
        f"semantic:     {s['requests']} requests, {s['ended_at_pause']} ended at a pause, endpoint wait median "
        f"{s['endpoint_wait_ms_median']} ms (p90 {s['endpoint_wait_ms_p90']}); transcript ready median "
        f"{s['transcript_ready_ms_median']} ms (p90 {s['transcript_ready_ms_p90']}); false cut-offs "
        f"{s['false_cutoffs']} ({s['false_cutoff_rate']:.1%})"
    )
    for c in res["cutoffs"]:
        print(
            f"  cut off: {c['source']}: heard {c['heard']!r}, ended {c['ended_s']} s, speech went on to "
            f"{c['speech_went_on_to_s']} s"
        )
    return 0


def run_speakers(args: argparse.Namespace) -> int:
    from assistant.bench.speakers import pipeline_latency, run_all
    from assistant.config import shared_data_dir

    settings = load_settings(args.config, args.profile)
    result = run_all(shared_data_dir() / "speech", threshold=settings.speaker.threshold)
    result["pipeline_latency"] = pipeline_latency(settings, args.home)
    print(json.dumps(result, indent=1))
    return 0


_SIDE_BY_SIDE = ("end_to_end", "endpoint_wait", "processing_to_first_audio", "asr", "tts_first_audio")


def run_versus(args: argparse.Namespace) -> int:
    """The base settings and each profile, one after the other in one run, on the same recordings."""
    runs = [(str(args.profile or "pipeline.yaml"), load_settings(args.config, args.profile))]
    runs += [(str(prof), load_settings(args.config, prof)) for prof in args.versus]
    results = {name: measure(settings, args.home, args.files, args.rounds, 0) for name, settings in runs}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    base = results[runs[0][0]]["stages"]
    table = Table(title="median (p90) ms, and the median as a ratio to the first column")
    table.add_column("stage")
    for name in results:
        table.add_column(name)
    for stage in _SIDE_BY_SIDE:
        cells = []
        for r in results.values():
            v = r["stages"].get(stage)
            ratio = f" x{v['median_ms'] / base[stage]['median_ms']:.2f}" if v and base.get(stage) else ""
            cells.append(f"{v['median_ms']:.0f} ({v['p90_ms']:.0f}){ratio}" if v else "-")
        table.add_row(stage, *cells)
    Console().print(table)
    print("end_to_end: end of speech -> first response audio (the endpointing wait included)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.endpointing:
        return run_endpointing(args)
    if args.speakers:
        return run_speakers(args)
    if args.wake:
        return run_wake(args)
    if args.asr_models:
        return run_asr_models(args)
    if args.versus:
        return run_versus(args)
    settings = load_settings(args.config, args.profile)
    result = measure(settings, args.home, args.files, args.rounds, args.catalog_entries)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console = Console()
    table = Table(
        title=f"latency over {result['turns']} turns ({result['rounds']} rounds of {len(result['files'])} files)"
    )
    for col in ("stage", "median ms", "p90 ms", "n"):
        table.add_column(col)
    for stage, v in result["stages"].items():
        table.add_row(stage, f"{v['median_ms']:.0f}", f"{v['p90_ms']:.0f}", str(v["n"]))
    console.print(table)
    console.print(
        f"end of speech -> first response audio: median {result['stages'].get('end_to_end', {}).get('median_ms')} ms "
        "(includes the endpointing silence the user waits for)"
    )
    console.print(f"ASR real-time factor {result['asr_rtf_median']}, TTS real-time factor {result['tts_rtf_median']}")
    console.print(
        f"replay: {result['replay_audio_seconds']} s of audio in {result['replay_wall_seconds']} s = "
        f"{result['replay_x_realtime']}x real time"
    )
    u = result["nlu_resolve_rerank_ms"]
    console.print(
        f"NLU + entity resolution + rerank per turn: median {u['total']['median_ms']} ms, "
        f"p95 {u['total']['p95_ms']} ms (NLU {u['nlu']['median_ms']}, resolve {u['resolve']['median_ms']}, "
        f"rerank {u['rerank']['median_ms']})"
    )
    if result["catalog_lookup"]:
        c = result["catalog_lookup"]
        console.print(
            f"catalog lookup at {c['rows']} entries: median {c['median_ms']} ms, "
            f"p95 {c['p95_ms']} ms, max {c['max_ms']} ms"
        )
    console.print(
        f"model load {result['load_seconds']} s {result['load_seconds_by_stage']}; "
        f"peak memory {result['peak_rss_mb']} MB; {result['cpu_count']} CPUs; "
        f"errors in {result['turns_with_error']} turns"
    )
    return 0
