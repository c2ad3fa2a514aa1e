"""Precomputed rewrites from absorbing Markov chains over reformulation sequences (see docs/learning.md).

States: the normalised utterances that take part in some reformulation (mining.py), plus two absorbing states,
success and failure. Transition probabilities are the mined counts, row-normalised: from utterance a the user either
rephrased to b (a -> b), or stopped there with the turn's outcome (a -> success / a -> failure). With Q the
transient-to-transient block and R the transient-to-absorbing block:

    N = (I - Q)^-1        expected visits to each utterance before absorption (N[a, b] > 0: b reachable from a)
    B = N R               probability of ending in success / failure from each utterance

For each failing source utterance a, the rewrite is the reachable utterance b (b != a) with the highest B[b, success],
kept only if the path a ... -> b was seen in at least `min_support` chains (by at least `min_users` users),
counting as one the targets that did the same thing when they worked (`meaning_of`: the action and its target, so
"switch on the floor lamp please" and "turn on the floor lamp" pool their support; B is then their support-weighted
mean),
B[b, success] >= `min_prob`, and it beats a's direct success rate (without the user rephrasing) by `min_gain`.
(B[a, success] itself is reported as `eventual`: how often the user got there anyway, by rephrasing.) Chains are
solved per connected cluster of
utterances (a cluster = the reformulations of one request), so the matrices stay small.

The table is versioned on disk: `<data dir>/rewrites/v{N}.json` and `<data dir>/rewrites/current` (the version in
use). `rollback(data_dir, N)` points `current` back at an earlier version; nothing is deleted.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import AssistantError
from assistant.learning.mining import Mined

TABLE_FORMAT = 1
REWRITES_DIR = "rewrites"
SUCCESS, FAILURE = 0, 1


@dataclass(frozen=True)
class MarkovConfig:
    min_support: int = 3
    """Chains (reformulation sequences) in which the source was followed by the target that then succeeded."""
    min_users: int = 1
    """Distinct users behind that support (raise it when traces come from many households)."""
    min_prob: float = 0.7
    """0-1: the target's probability of absorbing in success."""
    min_gain: float = 0.2
    """The target's success probability must beat the source's direct success rate (its turns that succeeded
    without a rephrase) by this much."""
    max_fail_rate_ok: float = 0.5
    """A source is 'failing' when at least this share of its turns failed or were rephrased."""
    max_cluster: int = 3000
    """Clusters larger than this are split by dropping their rarest edges (dense solve is O(n^3))."""


def absorbing_solution(tt: np.ndarray, ta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, B) for transient->transient counts `tt` (n, n) and transient->absorbing counts `ta` (n, 2).

    A state with no observed way out is taken to fail (unknown outcome: be conservative); so is a state from which
    no path reaches an outcome (a loop of rephrases pointing at each other, which would make I - Q singular)."""
    tt = np.asarray(tt, dtype=np.float64)
    ta = np.asarray(ta, dtype=np.float64).copy()
    reaches = ta.sum(1) > 0
    while True:  # backwards: states with an edge into a state that reaches an outcome
        more = reaches | ((tt > 0) & reaches[None, :]).any(1)
        if (more == reaches).all():
            break
        reaches = more
    ta[~reaches, FAILURE] += 1.0
    tot = tt.sum(1) + ta.sum(1)
    q, r = tt / tot[:, None], ta / tot[:, None]
    n = np.linalg.inv(np.eye(len(q)) - q)
    return n, n @ r


def _clusters(src: list[str], dst: list[str], weight: np.ndarray, max_size: int) -> list[list[str]]:
    """Connected components of the utterance graph (union-find); a too-big component is re-split without its
    rarest edges."""

    def components(edges: list[tuple[str, str]]) -> list[list[str]]:
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a, b in edges:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb
        groups: dict[str, list[str]] = defaultdict(list)
        for x in parent:
            groups[find(x)].append(x)
        return list(groups.values())

    edges = list(zip(src, dst))
    out = []
    for comp in components(edges):
        if len(comp) <= max_size:
            out.append(comp)
            continue
        members = set(comp)
        sub = [(a, b, w) for (a, b), w in zip(edges, weight) if a in members]
        cut = np.quantile([w for *_, w in sub], 0.5)
        kept = [(a, b) for a, b, w in sub if w > cut]
        sizes = components(kept)
        placed = {x for c in sizes for x in c}
        out += [c[:max_size] for c in sizes] + [[x] for x in comp if x not in placed]
    return out


def solve(mined: Mined, config: MarkovConfig = MarkovConfig()) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The rewrite table {source: {target, probability, baseline, support, users}} and solve statistics."""
    t0 = time.perf_counter()
    e = mined.edges
    src, dst = list(e["src"]), list(e["dst"])
    n_tr = np.asarray(e["n"], dtype=np.float64)
    absorb = {
        u: (float(s), float(f))
        for u, s, f in zip(mined.absorb["utt"], mined.absorb["success"], mined.absorb["failure"])
    }
    pair = {
        (a, b): (int(c), int(u))
        for a, b, c, u in zip(mined.pairs["src"], mined.pairs["dst"], mined.pairs["chains"], mined.pairs["users"])
    }
    out_edges: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for a, b, w in zip(src, dst, n_tr):
        out_edges[a].append((b, w))
    table: dict[str, dict[str, Any]] = {}
    clusters = _clusters(src, dst, n_tr, config.max_cluster)
    largest = 0
    for comp in clusters:
        if len(comp) < 2:
            continue
        largest = max(largest, len(comp))
        idx = {u: i for i, u in enumerate(comp)}
        tt = np.zeros((len(comp), len(comp)))
        ta = np.zeros((len(comp), 2))
        for u, i in idx.items():
            for b, w in out_edges.get(u, ()):
                j = idx.get(b)
                if j is not None:
                    tt[i, j] += w
                else:  # an edge cut when splitting a huge cluster: count it as a failed attempt
                    ta[i, FAILURE] += w
            s, f = absorb.get(u, (0.0, 0.0))
            ta[i] += (s, f)
        n_mat, b_mat = absorbing_solution(tt, ta)
        tot = tt.sum(1) + ta.sum(1)
        fail_rate = np.where(tot > 0, 1.0 - ta[:, SUCCESS] / np.maximum(tot, 1e-12), 1.0)
        p_success = b_mat[:, SUCCESS]
        for u, i in idx.items():
            if fail_rate[i] < config.max_fail_rate_ok:
                continue
            # targets that did the same thing when they worked are one outcome: "switch on the floor lamp please"
            # and "turn on the floor lamp" share their support (the wording with the most support is the rewrite)
            groups: dict[str, list[tuple[str, int, int, int]]] = defaultdict(list)
            for v, j in idx.items():
                if j == i or n_mat[i, j] <= 1e-12:
                    continue
                sup, users = pair.get((u, v), (0, 0))
                if sup > 0:
                    groups[meaning_of(mined, v)].append((v, j, sup, users))
            best = None
            for members in groups.values():
                sup = sum(m[2] for m in members)
                users = max(m[3] for m in members)
                if sup < config.min_support or users < config.min_users:
                    continue
                p = sum(p_success[m[1]] * m[2] for m in members) / sup
                v, j, *_ = max(members, key=lambda m: (m[2], p_success[m[1]], m[0]))
                key = (p, sup)
                if best is None or key > best[0]:
                    best = (key, v, j, sup, users)
            if best is None:
                continue
            ((p, _), v, j, sup, users) = best
            direct = 1.0 - fail_rate[i]
            if p < config.min_prob or p - direct < config.min_gain:
                continue
            table[u] = {
                "target": v,
                "probability": round(float(p), 4),
                "baseline": round(float(direct), 4),
                "eventual": round(float(p_success[i]), 4),
                "support": sup,
                "users": users,
                "direct_success": round(float(ta[j, SUCCESS] / max(tot[j], 1e-12)), 4),
            }
    stats = {
        "clusters": sum(1 for c in clusters if len(c) > 1),
        "largest_cluster": largest,
        "rewrites": len(table),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return table, stats


def meaning_of(mined: Mined, utt: str) -> str:
    """What `utt` did when it worked (the action and its target), or the utterance itself when that is unknown."""
    m = (mined.meanings or {}).get(utt)
    return f"meaning:{m}" if m else f"utt:{utt}"


def contested(mined: Mined, table: dict[str, dict[str, Any]], keep_rate: float = 0.6) -> dict[str, list[str]]:
    """Sources of the global table that work as said for some user ({source: [users]}): in >= `keep_rate` of that
    user's >= 2 turns of it. Such a phrase means different things to different people ("the big light" is one
    person's floor lamp and another's ceiling light), so a rewrite of it for everyone would take one group's meaning
    for all, and newcomers too; the personal table gives the rewrite to the users whose own chains show it."""
    owners = works_as_said(mined, keep_rate)
    return {a: owners[a] for a in sorted(table) if a in owners}


def works_as_said(mined: Mined, keep_rate: float = 0.6) -> dict[str, list[str]]:
    """Requests that work as said for some user ({utterance: [users]}): in >= `keep_rate` of that user's >= 2 turns
    of it. The global table drops them (`contested`), and the global online layer leaves them alone (the table
    document's `works_as_said`): a rewrite for everyone would take one person's meaning for all."""
    uu = mined.user_utt or {}
    out: dict[str, list[str]] = {}
    for u, a, n, k in zip(uu.get("user_id", ()), uu.get("utt", ()), uu.get("n", ()), uu.get("ok", ())):
        if int(n) >= 2 and int(k) / int(n) >= keep_rate:
            out.setdefault(a, []).append(str(u))
    return {a: sorted(us) for a, us in sorted(out.items())}


def personal_table(
    mined: Mined,
    table: dict[str, dict[str, Any]],
    min_support: int = 2,
    keep_rate: float = 0.6,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per user (pseudonym), this user's own rewrites, and the requests that work for them as said.

    - A rewrite a -> b for user u: in >= `min_support` of u's own chains a was followed by b, or by another wording
      that did the same as b (`meaning_of`), that succeeded, at least
      half of u's turns of a went that way, and a seldom worked for u as said (< half its turns); kept only when the
      global table does not already say the same (their "big light" is the floor lamp while most people's is not).
    - keep: a source the global table rewrites that worked for u as said in >= `keep_rate` of u's >= 2 turns of it
      (their "Portland" is the one the catalog picks): the rewriter then leaves it alone for u. `learn rewrites`
      drops such sources from the global table first (`contested`), so its tables have no keeps; they matter for a
      global table built without that step.
    """
    up, uu = mined.user_pairs or {}, mined.user_utt or {}
    said = {
        (u, a): (int(n), int(k))
        for u, a, n, k in zip(uu.get("user_id", ()), uu.get("utt", ()), uu.get("n", ()), uu.get("ok", ()))
    }
    # this user's chains from a, by what their successful target did: wordings of one meaning add up
    by_meaning: dict[tuple[str, str], dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for u, a, b, c in zip(up.get("user_id", ()), up.get("src", ()), up.get("dst", ()), up.get("chains", ())):
        by_meaning[(u, a)][meaning_of(mined, b)][b] = int(c)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (u, a), groups in sorted(by_meaning.items()):
        c, _, b = max((sum(ws.values()), m, max(ws, key=lambda w: (ws[w], w))) for m, ws in groups.items())
        if c < min_support:
            continue
        n, k = said.get((u, a), (c, 0))
        n = max(n, c)
        if k / n >= 0.5 or c / n < 0.5:
            continue
        g = table.get(a)
        if g is not None and meaning_of(mined, g["target"]) == meaning_of(mined, b):
            continue
        out.setdefault(u, {})[a] = {
            "target": b,
            "probability": round(c / n, 4),
            "baseline": round(k / n, 4),
            "support": c,
        }
    for a, users in contested(mined, table, keep_rate).items():
        for u in users:
            if a not in out.get(u, {}):
                n, k = said[(u, a)]
                out.setdefault(u, {})[a] = {"keep": True, "turns": n, "ok": k}
    return out


def table_rows(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The table as rows (source first), sorted by source: for Parquet output and engine-to-engine comparison."""
    return [{"source": src, **entry} for src, entry in sorted(table.items())]


# -- the versioned table on disk ------------------------------------------------------------------------------
def rewrites_dir(data_dir: Path) -> Path:
    return Path(data_dir) / REWRITES_DIR


def versions(data_dir: Path) -> list[int]:
    d = rewrites_dir(data_dir)
    return sorted(int(p.stem[1:]) for p in d.glob("v*.json") if p.stem[1:].isdigit()) if d.is_dir() else []


def current_version(data_dir: Path) -> int | None:
    p = rewrites_dir(data_dir) / "current"
    try:
        return int(p.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _atomic_write(path: Path, text: str) -> None:
    """Write-then-rename: a killed job leaves the old file whole. The fsyncs make the same hold after a power cut
    (v{N}.json is on disk before `current` can name it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_table(
    data_dir: Path,
    table: dict[str, dict[str, Any]],
    config: MarkovConfig | None = None,
    stats: dict[str, Any] | None = None,
    make_current: bool = True,
    personal: dict[str, dict[str, dict[str, Any]]] | None = None,
    as_said: Iterable[str] = (),
) -> int:
    """Write the table as the next version (v{N}.json) and point `current` at it; returns N. `as_said`: the requests
    that work as said for some user (`works_as_said`), which the global online layer does not rewrite."""
    d = rewrites_dir(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    version = (max(versions(data_dir)) if versions(data_dir) else 0) + 1
    doc = {
        "format": TABLE_FORMAT,
        "version": version,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": "absorbing-markov-chain",
        "params": asdict(config) if config else {},
        "stats": stats or {},
        "rewrites": dict(sorted(table.items())),
        "personal": personal or {},
        "works_as_said": sorted(as_said),
    }
    _atomic_write(d / f"v{version}.json", json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    if make_current:
        _atomic_write(d / "current", f"{version}\n")
    return version


def load_table(data_dir: Path, version: int | None = None) -> dict[str, Any] | None:
    """The table document of `version` (default: the current one), or None when there is none yet."""
    version = current_version(data_dir) if version is None else version
    if version is None or version == 0:
        return None
    path = rewrites_dir(data_dir) / f"v{version}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def rollback(data_dir: Path, version: int) -> int:
    """Point `current` at an earlier (or any existing) version; 0 turns precomputed rewriting off."""
    if version != 0 and version not in versions(data_dir):
        have = ", ".join(map(str, versions(data_dir))) or "none"
        raise AssistantError("no-such-rewrite-version", f"No rewrite table v{version} (have: {have}).")
    rewrites_dir(data_dir).mkdir(parents=True, exist_ok=True)
    _atomic_write(rewrites_dir(data_dir) / "current", f"{version}\n")
    return version
