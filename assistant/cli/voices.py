"""`assistant voices enroll NAME FILES... | list | forget NAME | identify FILES...`: the household's voices."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant.config import DEFAULT_PIPELINE, default_data_dir, load_settings


def register(sub) -> None:
    p = sub.add_parser("voices", help="enroll, list and forget the voices the assistant recognises")
    vsub = p.add_subparsers(dest="voices_cmd", metavar="ACTION")
    e = vsub.add_parser("enroll", help="learn NAME's voice from recordings (each file one utterance, >= 1 s)")
    e.add_argument("name", metavar="NAME", help="the person (their user id: lists, history, privacy)")
    e.add_argument("files", metavar="FILE", nargs="+", type=Path, help="WAV/FLAC/MP3 recordings of NAME speaking")
    e.add_argument("--replace", action="store_true", help="replace NAME's voiceprint instead of adding to it")
    e.set_defaults(func=run_enroll)
    lst = vsub.add_parser("list", help="the enrolled people")
    lst.set_defaults(func=run_list)
    f = vsub.add_parser("forget", help="delete NAME's voiceprint")
    f.add_argument("name", metavar="NAME")
    f.set_defaults(func=run_forget)
    i = vsub.add_parser("identify", help="who speaks in each file (scores against every enrolled voice)")
    i.add_argument("files", metavar="FILE", nargs="+", type=Path)
    i.set_defaults(func=run_identify)
    for q in (e, lst, f, i):
        q.add_argument("--data-dir", type=Path, help="where the voices are kept (default: the data dir)")
        q.add_argument("--config", type=Path, default=DEFAULT_PIPELINE)
        q.add_argument("--profile", type=Path, default=None)
        q.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: p.print_help() or 2)


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or default_data_dir()


def _identifier(args: argparse.Namespace):
    from assistant.speakers.enroll import build_identifier

    return build_identifier(load_settings(args.config, args.profile), _data_dir(args))


def _out(args: argparse.Namespace, data, text: str) -> int:
    print(json.dumps(data) if args.json else text)
    return 0


def run_enroll(args: argparse.Namespace) -> int:
    from assistant.speakers.enroll import enroll_files

    voice, skipped = enroll_files(_identifier(args), args.name, args.files, replace=args.replace)
    for s in skipped:
        print(f"skipped {s}")
    return _out(
        args,
        {"name": voice.name, "utterances": voice.utterances, "seconds": voice.seconds, "skipped": skipped},
        f"enrolled {voice.name}: {voice.utterances} utterance(s), {voice.seconds:.1f} s of speech",
    )


def run_list(args: argparse.Namespace) -> int:
    from assistant.speakers.voices import VoiceStore

    voices = VoiceStore(_data_dir(args)).voices().values()
    rows = [
        {"name": v.name, "utterances": v.utterances, "seconds": v.seconds, "enrolled_at": v.enrolled_at} for v in voices
    ]
    text = "\n".join(
        f"{r['name']}\t{r['utterances']} utterance(s)\t{r['seconds']:.1f} s\t{r['enrolled_at']}" for r in rows
    )
    return _out(args, rows, text or "no voices enrolled (assistant voices enroll NAME FILES...)")


def run_forget(args: argparse.Namespace) -> int:
    from assistant.speakers.enroll import forget

    gone = forget(_data_dir(args), args.name)
    return _out(
        args,
        {"name": args.name, "forgotten": gone},
        f"forgot {args.name}'s voice" if gone else f"no voice enrolled for {args.name}",
    )


def run_identify(args: argparse.Namespace) -> int:
    from assistant import audio as audio_io

    ident = _identifier(args)
    rows = []
    for f in args.files:
        res, _ = ident.identify(audio_io.read_file(f))
        rows.append(
            {
                "file": str(f),
                "person": res.person,
                "decision": res.decision,
                "score": res.score,
                "candidate": res.candidate,
                "scores": res.scores,
            }
        )
    text = "\n".join(
        f"{r['file']}: {r['person'] or 'unknown'} ({r['decision']}, best {r['candidate']} {r['score']})" for r in rows
    )
    return _out(args, rows, text)
