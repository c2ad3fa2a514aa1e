"""ONNX Runtime session options shared by the backends that feed a model variable-length inputs.

ONNX Runtime's CPU memory arena (a BFC arena) grows to the largest tensors a session has ever run and never gives
memory back: with inputs whose length varies (a sentence's tokens, a reply's phonemes, a request's audio) a
long-running process's RSS ratchets up to the longest input of its life (onnxruntime issue #11627; the soak in
docs/reliability.md). Without the arena ONNX Runtime allocates from the C heap, which `assistant.core.memory`
trims after each turn; for these small models the speed is the same.
"""

from __future__ import annotations


def session_options(threads: int | None = 1, *, arena: bool = False):
    """Options with the CPU arena off (on with `arena=True`); `threads=None` keeps ONNX Runtime's thread default."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = arena
    return opts
