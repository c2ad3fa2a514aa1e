"""Small multinomial logistic regression in numpy (no scikit-learn in the runtime): fitted by damped Newton steps
with an L2 penalty, features standardised, saved as JSON (a few KB), with temperature scaling for calibration.

    m = Logistic.fit(X, y, feature_names, classes)    # y: class indices
    p = m.predict_proba(X)                            # (n, k)
    m.save(path); Logistic.load(path)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Logistic:
    feature_names: list[str]
    classes: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    """(d + 1, k): the last row is the bias. For two classes column 0 is fixed at zero."""
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    # -- fitting ------------------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        classes: list[str],
        l2: float = 1.0,
        iterations: int = 40,
        sample_weight: np.ndarray | None = None,
    ) -> Logistic:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        n, d = X.shape
        k = len(classes)
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        Z = np.hstack([(X - mean) / scale, np.ones((n, 1))])
        sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        Y = np.zeros((n, k))
        Y[np.arange(n), y] = 1.0
        free = list(range(1, k)) if k == 2 else list(range(k))  # two classes: one free column (plain logistic)
        W = np.zeros((d + 1, k))
        reg = np.full(d + 1, l2)
        reg[-1] = 1e-6  # the bias is not penalised

        def loss(W_: np.ndarray) -> float:
            P_ = _softmax(Z @ W_)
            return float(
                -(sw * np.log(np.clip((P_ * Y).sum(axis=1), 1e-12, None))).sum()
                + 0.5 * (reg[:, None] * W_[:, free] ** 2).sum()
            )

        cur = loss(W)
        for _ in range(iterations):
            P = _softmax(Z @ W)
            G = Z.T @ ((P - Y) * sw[:, None]) + reg[:, None] * W  # (d+1, k)
            m = len(free)
            H = np.zeros((m * (d + 1), m * (d + 1)))
            for a, ca in enumerate(free):
                for b, cb in enumerate(free):
                    w = P[:, ca] * ((ca == cb) - P[:, cb]) * sw
                    block = (Z * w[:, None]).T @ Z
                    if a == b:
                        block += np.diag(reg)
                    H[a * (d + 1) : (a + 1) * (d + 1), b * (d + 1) : (b + 1) * (d + 1)] = block
            g = np.concatenate([G[:, c] for c in free])
            try:
                step = np.linalg.solve(H + 1e-8 * np.eye(len(g)), g)
            except np.linalg.LinAlgError:
                step = g * 1e-2
            t = 1.0
            while t > 1e-4:
                W_new = W.copy()
                for a, c in enumerate(free):
                    W_new[:, c] -= t * step[a * (d + 1) : (a + 1) * (d + 1)]
                new = loss(W_new)
                if new <= cur:
                    break
                t *= 0.5
            if t <= 1e-4:
                break
            W, done = W_new, cur - new < 1e-7 * max(1.0, abs(cur))
            cur = new
            if done:
                break
        return cls(list(feature_names), list(classes), mean, scale, W)

    # -- inference ----------------------------------------------------------------------------------------------
    def logits(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        Z = np.hstack([(X - self.mean) / self.scale, np.ones((X.shape[0], 1))])
        return Z @ self.weights

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return _softmax(self.logits(X) / self.temperature)

    def vector(self, feats: dict[str, float]) -> np.ndarray:
        return np.array([float(feats.get(name, 0.0)) for name in self.feature_names])

    def top_weights(self, cls_name: str, n: int = 8) -> list[tuple[str, float]]:
        c = self.classes.index(cls_name)
        w = self.weights[:-1, c] - (self.weights[:-1].mean(axis=1) if len(self.classes) > 2 else 0.0)
        order = np.argsort(-np.abs(w))[:n]
        return [(self.feature_names[i], round(float(w[i]), 3)) for i in order]

    # -- persistence --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_names": self.feature_names,
            "classes": self.classes,
            "mean": [round(float(x), 6) for x in self.mean],
            "scale": [round(float(x), 6) for x in self.scale],
            "weights": [[round(float(x), 6) for x in row] for row in self.weights],
            "temperature": round(self.temperature, 4),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Logistic:
        return cls(
            d["feature_names"],
            d["classes"],
            np.array(d["mean"]),
            np.array(d["scale"]),
            np.array(d["weights"]),
            float(d.get("temperature", 1.0)),
            d.get("meta", {}),
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Logistic:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class Boosted:
    """Gradient-boosted regression trees (softmax, Newton leaves) in numpy: the same interface as `Logistic`.
    Small: `rounds` x classes trees of depth `depth` over quantile thresholds."""

    feature_names: list[str]
    classes: list[str]
    trees: list[list[list[Any]]]
    """per round, per class: nodes [feature, threshold, left, right, value] (feature -1 = leaf)"""
    base: list[float]
    lr: float
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    _arrays: list[Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        classes: list[str],
        rounds: int = 60,
        depth: int = 2,
        lr: float = 0.15,
        lam: float = 1.0,
        bins: int = 16,
        min_hess: float = 1.0,
    ) -> Boosted:
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        k = len(classes)
        qs = [np.unique(np.quantile(X[:, j], np.linspace(0, 1, bins + 1)[1:-1])) for j in range(d)]
        B = np.stack([np.searchsorted(qs[j], X[:, j], side="right") for j in range(d)], axis=1)  # bin b: x < qs[b]
        Y = np.zeros((n, k))
        Y[np.arange(n), y] = 1.0
        prior = np.clip(Y.mean(axis=0), 1e-3, None)
        base = np.log(prior)
        F = np.tile(base, (n, 1))
        trees: list[list[list[Any]]] = []
        for _ in range(rounds):
            P = _softmax(F)
            round_trees = []
            for c in range(k):
                g, h = P[:, c] - Y[:, c], np.maximum(P[:, c] * (1 - P[:, c]), 1e-6)
                nodes, leaf_of = _grow(X, B, qs, g, h, depth, lam, min_hess)
                vals = np.array([nd[4] for nd in nodes])
                F[:, c] += lr * vals[leaf_of]
                round_trees.append(nodes)
            trees.append(round_trees)
        return cls(list(feature_names), list(classes), trees, [float(x) for x in base], lr)

    def logits(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        n = X.shape[0]
        F = np.tile(np.array(self.base), (n, 1))
        rows = np.arange(n)
        if self._arrays is None:
            self._arrays = [[_tree_arrays(nodes) for nodes in rt] for rt in self.trees]
        for round_arrays in self._arrays:
            for c, (feat, thr, left, right, val) in enumerate(round_arrays):
                at = np.zeros(n, dtype=int)
                while True:
                    f = feat[at]
                    inner = f >= 0
                    if not inner.any():
                        break
                    go_left = X[rows, np.where(inner, f, 0)] < thr[at]
                    at = np.where(inner, np.where(go_left, left[at], right[at]), at)
                F[:, c] += self.lr * val[at]
        return F

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return _softmax(self.logits(X) / self.temperature)

    def vector(self, feats: dict[str, float]) -> np.ndarray:
        return np.array([float(feats.get(name, 0.0)) for name in self.feature_names])

    def to_dict(self) -> dict[str, Any]:
        trees = [
            [[[a, round(b, 6), c_, d_, round(e, 6)] for a, b, c_, d_, e in nodes] for nodes in rt] for rt in self.trees
        ]
        return {
            "kind": "boosted",
            "feature_names": self.feature_names,
            "classes": self.classes,
            "trees": trees,
            "base": self.base,
            "lr": self.lr,
            "temperature": round(self.temperature, 4),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Boosted:
        return cls(
            d["feature_names"],
            d["classes"],
            d["trees"],
            d["base"],
            d["lr"],
            float(d.get("temperature", 1.0)),
            d.get("meta", {}),
        )

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()) + "\n", encoding="utf-8")


def load_model(path: Path) -> Logistic | Boosted:
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    return Boosted.from_dict(d) if d.get("kind") == "boosted" else Logistic.from_dict(d)


def _grow(
    X: np.ndarray,
    B: np.ndarray,
    qs: list[np.ndarray],
    g: np.ndarray,
    h: np.ndarray,
    depth: int,
    lam: float,
    min_hess: float,
) -> tuple[list[list[Any]], np.ndarray]:
    """One regression tree on gradients g and hessians h (Newton leaf values, histogram splits on quantile bins)."""
    n, d = X.shape
    nodes: list[list[Any]] = []
    leaf_of = np.zeros(n, dtype=np.int64)
    stack = [(np.arange(n), 0, -1, 0)]  # (rows, level, parent, side)
    while stack:
        idx, level, parent, side = stack.pop()
        G, H = g[idx].sum(), h[idx].sum()
        me = len(nodes)
        nodes.append([-1, 0.0, -1, -1, float(-G / (H + lam))])
        if parent >= 0:
            nodes[parent][2 + side] = me
        best = (0.0, -1, 0)
        if level < depth and len(idx) >= 4:
            base_gain = G * G / (H + lam)
            for j in range(d):
                nb = len(qs[j]) + 1
                if nb < 2:
                    continue
                gl = np.cumsum(np.bincount(B[idx, j], weights=g[idx], minlength=nb))[:-1]
                hl = np.cumsum(np.bincount(B[idx, j], weights=h[idx], minlength=nb))[:-1]
                ok = (hl >= min_hess) & (H - hl >= min_hess)
                if not ok.any():
                    continue
                gain = gl**2 / (hl + lam) + (G - gl) ** 2 / (H - hl + lam) - base_gain
                gain[~ok] = -np.inf
                b = int(np.argmax(gain))
                if gain[b] > best[0]:
                    best = (float(gain[b]), j, b)
        if best[1] < 0:
            leaf_of[idx] = me
            continue
        _gain, j, b = best
        thr = float(qs[j][b])
        nodes[me][0], nodes[me][1] = j, thr
        stack.append((idx[X[idx, j] >= thr], level + 1, me, 1))
        stack.append((idx[X[idx, j] < thr], level + 1, me, 0))
    return nodes, leaf_of


def _tree_arrays(nodes: list[list[Any]]) -> tuple[np.ndarray, ...]:
    a = np.array(nodes, dtype=np.float64)
    return a[:, 0].astype(int), a[:, 1], a[:, 2].astype(int), a[:, 3].astype(int), a[:, 4]
