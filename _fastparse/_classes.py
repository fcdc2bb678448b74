"""Error classes: which kind of failure an error event is, as data.

``BUILTIN_CLASSES`` lists, in priority order, each class with its keywords. An event's
``error.class`` is the first class one of whose keywords occurs in its text (``message``
with its continuation lines, so a grouped traceback's stack counts), compared as an
ASCII case-insensitive literal substring; ``other`` when none does. Both twins read this
table (the compiled one turns it into a bitmap of the keywords' first two bytes and
verifies candidates with ``memcmp``), so adding a class or a keyword is a change here
and nowhere else.

Keywords are chosen to be specific: an ordinary INFO line of a training run (NCCL and
torchrun start-up chatter, "Loading checkpoint shards", "Saving model checkpoint", a
DataLoader with workers) must match none of them, since a keyword alone makes an event an
error event. Order matters where messages overlap: a CUDA ``OutOfMemoryError`` is an
``accelerator_oom`` before ``MemoryError`` makes it a ``host_oom``; an NCCL watchdog
timeout is a ``timeout`` before its ``NCCL`` makes it ``distributed``; a ``size mismatch``
inside ``Error(s) in loading state_dict`` is a ``load_failure`` before an ``input_error``.

Users extend the table with ``error_classes: {name: [keyword, ...]}``
(:func:`build_classes`): a new class is checked before the built-ins; naming a built-in
adds keywords to it.
"""

from __future__ import annotations

import functools
import sys
from array import array
from collections.abc import Mapping, Sequence
from itertools import accumulate

#: The class of an error event that no keyword names.
OTHER = "other"

BUILTIN_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accelerator_oom", (
        "cuda out of memory",  # torch: "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate"
        "cuda error: out of memory",
        "hip out of memory",  # ROCm builds of torch
        "hip error: out of memory",
        "mps backend out of memory",
        "xpu out of memory",
        "torch.outofmemoryerror",
        "cuda.outofmemoryerror",
        "cublas_status_alloc_failed",
        "cudnn_status_alloc_failed",
        "cuda_error_out_of_memory",
        "cudaerrormemoryallocation",
        "hiperroroutofmemory",
        "oom when allocating tensor",  # TensorFlow ResourceExhaustedError
        "resource_exhausted: out of memory",  # JAX / XLA
        "ran out of memory in memory space hbm",  # XLA:TPU
        "tpu out of memory",
        "out of memory while trying to allocate",
    )),
    ("host_oom", (
        "out of memory: killed process",  # the kernel's OOM killer
        "invoked oom-killer",
        "oom-kill",
        "oom_kill",
        "oomkilled",
        "memory cgroup out of memory",
        "memoryerror",  # Python's MemoryError, Java's OutOfMemoryError
        "cannot allocate memory",
        "std::bad_alloc",
        "signal 9 (sigkill)",  # torchelastic: a worker killed, in practice by the OOM killer
    )),
    ("nan_loss", (
        "loss is nan",
        "loss is inf",
        "loss became nan",
        "nan loss",
        "non-finite loss",
        "loss is not finite",
        "nan or inf found",
        "is non-finite, so it cannot be clipped",  # torch.nn.utils.clip_grad_norm_(error_if_nonfinite=True)
        "found inf or nan",
        "tensor had nan values",  # tf.debugging.check_numerics
        "tensor had inf values",
        "returned nan values in its",  # torch.autograd.detect_anomaly
        "invalid value (nan) encountered",  # jax_debug_nans
        "nan detected",
        "detected nan",
        "gradient overflow",  # apex / DeepSpeed dynamic loss scaling
        "invalid loss, terminating training",  # keras TerminateOnNaN
    )),
    ("load_failure", (
        "error(s) in loading state_dict",
        "missing key(s) in state_dict",
        "unexpected key(s) in state_dict",
        "failed to load checkpoint",
        "error loading checkpoint",
        "could not load checkpoint",
        "unable to load weights",
        "can't load the model",
        "can't load tokenizer",
        "can't load config",
        "pytorchstreamreader failed",  # a truncated or corrupt .pt file
        "weights only load failed",
        "unpicklingerror",
        "safetensorerror",
        "error while deserializing header",
        "unsuccessful tensorslicereader constructor",  # TensorFlow checkpoint not found
        "no checkpoint found",
        "checkpoint not found",
    )),
    ("data_loading", (
        "dataloader worker (pid",  # "DataLoader worker (pid 123) is killed by signal" / "exited unexpectedly"
        "in dataloader worker process",  # "Caught ValueError in DataLoader worker process 3."
        "datalosserror",  # TensorFlow: corrupted record
        "corrupted record at",
        "datasetgenerationerror",
        "arrowinvalid",
        "unicodedecodeerror",
        "error reading data",
        "failed to read data",
        "error decoding record",
    )),
    ("input_error", (
        "size mismatch",
        "shape mismatch",
        "shapes cannot be multiplied",  # "mat1 and mat2 shapes cannot be multiplied"
        "incompatible shapes",  # TensorFlow
        "sizes of tensors must match",
        "must match the size of tensor",
        "expected input batch_size",
        "index out of range in self",  # an embedding fed an id past its vocabulary
        "input to reshape is a tensor with",
        "cannot identify image file",  # PIL.UnidentifiedImageError
        "image file is truncated",
        "tokenizer does not have a padding token",
        "unable to create tensor, you should probably activate truncation",
    )),
    ("timeout", (
        "watchdog caught collective operation timeout",
        "collective operation timeout",
        "watchdog thread terminated with exception",
        "timed out after",  # DistStoreError: "Timed out after 901 seconds waiting for clients"
        "timed out waiting for",
        "timed out initializing process group",
        "rendezvoustimeouterror",
        "deadline_exceeded",
        "deadlineexceedederror",
        "heartbeat timeout",
    )),
    ("distributed", (
        "nccl error",
        "ncclsystemerror",
        "ncclinternalerror",
        "ncclunhandledcudaerror",
        "ncclinvalidusage",
        "ncclremoteerror",
        "nccl communicator was aborted",
        "nccl operations have failed",
        "distbackenderror",
        "distnetworkerror",
        "diststoreerror",
        "childfailederror",
        "torch.distributed.elastic.multiprocessing.errors",
        "failed (exitcode:",  # torchelastic: "failed (exitcode: 1) local_rank: 0"
        "gloo/transport",
        "connection closed by peer",
        "rendezvousclosederror",
    )),
)


class ErrorClasses:
    """The table one parser uses: ``names`` (``other`` last) and ``keywords`` as (lower-cased
    keyword bytes, class index) in class order."""

    __slots__ = ("keywords", "names")

    def __init__(self, names: tuple[str, ...], keywords: tuple[tuple[bytes, int], ...]) -> None:
        self.names = names
        self.keywords = keywords

    @property
    def nan_loss(self) -> int:
        """Index of ``nan_loss``: a NaN or infinite loss metric counts as its keyword."""
        return self.names.index("nan_loss")


def build_classes(extra: Mapping[str, Sequence[str]] | None = None) -> ErrorClasses:
    """The built-in table extended by the user's ``error_classes`` mapping.

    A class not built in is checked first (in the mapping's order); keywords given for a
    built-in class are added to it. ``other`` cannot be named (it is what no keyword
    matched). ValueError/TypeError name the bad entry.
    """
    user: list[tuple[str, tuple[str, ...]]] = []
    added: dict[str, tuple[str, ...]] = {}
    builtin = {name for name, _ in BUILTIN_CLASSES}
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise TypeError(f"error_classes must be a mapping of class -> [keyword, ...], not {type(extra).__name__}")
        for name, words in extra.items():
            if not isinstance(name, str) or not name or not all(c.isalnum() or c == "_" for c in name):
                raise ValueError(f"error_classes: class name {name!r} must be letters, digits and _")
            if name == OTHER:
                raise ValueError(f"error_classes.{name}: 'other' is what no keyword matches; it has no keywords")
            if isinstance(words, str) or not isinstance(words, Sequence):
                raise TypeError(f"error_classes.{name} must be a list of keywords")
            kws: list[str] = []
            for w in words:
                if not isinstance(w, str) or len(w.encode("utf-8")) < MIN_KEYWORD or "\n" in w:
                    raise ValueError(f"error_classes.{name}: keyword {w!r} must be one line of "
                                     f"{MIN_KEYWORD} bytes or more")
                kws.append(w)
            if name in builtin:
                added[name] = tuple(kws)
            else:
                user.append((name, tuple(kws)))
    table = user + [(name, words + added.get(name, ())) for name, words in BUILTIN_CLASSES]
    names = (*(name for name, _ in table), OTHER)
    keywords = tuple((_lower(w.encode("utf-8")), i) for i, (_, words) in enumerate(table) for w in words)
    return ErrorClasses(names, keywords)


def _lower(b: bytes) -> bytes:
    """ASCII lower case (``bytes.lower`` leaves other bytes alone, as the C side does)."""
    return b.lower()


#: Keywords are found by 4-byte windows (see :func:`scan_tables`): none may be shorter.
MIN_KEYWORD = 4


def window_hash(b: bytes) -> int:
    """16-bit hash of 4 bytes with bit 5 set in each (little-endian word times a Fibonacci
    constant); ``_cparser.pyx`` computes the same. Setting bit 5 lower-cases A-Z in one
    OR (the scan's window is not lower-cased first); it also folds some other pairs
    (``@`` and a backtick, ``[`` and ``{``...), which only adds bitmap hits that the exact
    comparison of the keyword rejects: a keyword window and any text window that
    lower-cases to it hash alike."""
    return (((int.from_bytes(b, "little") | 0x20202020) * 0x9E3779B1) & 0xFFFFFFFF) >> 16


@functools.lru_cache(maxsize=16)
def scan_tables(keywords: tuple[tuple[bytes, int], ...]) -> tuple[int, bytes, bytes, bytes, bytes, bytes, bytes]:
    """The compiled parser's keyword index, shared by every parser with the same table.

    With ``L`` the shortest keyword, every occurrence of a keyword covers a 4-byte window
    starting at a multiple of ``stride = L - 3``: the scan hashes only those windows,
    looks the hash up in a 65,536-bit bitmap of all 4-byte windows of all keywords, and
    on a hit verifies the keywords listed for that hash at their offsets. Exact, and
    about ``n / stride`` lookups for ``n`` bytes of text. Returns (stride, bitmap,
    entries: sorted (hash, keyword index, offset) int32 triples, where each hash's entries
    start (65,537 uint16), keyword bytes concatenated, their start offsets (int32, one
    more than keywords), their classes). About 140 KiB, once per distinct table."""
    shortest = min((len(k) for k, _ in keywords), default=MIN_KEYWORD)
    stride = max(1, shortest - 3)
    bitmap = bytearray(8192)
    entries: list[tuple[int, int, int]] = []
    for i, (kw, _) in enumerate(keywords):
        n = len(kw) - 3
        # window_hash of each 4-byte window, the words read at once (start-up cost: this
        # runs for the first parser of every agent)
        words = array(_U32, b"".join([kw[off:off + 4] for off in range(n)]))
        if sys.byteorder == "big":  # pragma: no cover - window_hash reads little-endian words
            words.byteswap()
        hashes = [(((w | 0x20202020) * 0x9E3779B1) & 0xFFFFFFFF) >> 16 for w in words]
        for h in hashes:
            bitmap[h >> 3] |= 1 << (h & 7)
        entries += zip(hashes, [i] * n, range(n), strict=True)
    entries.sort()
    if len(entries) >= 65536:
        raise ValueError("error_classes: too many keywords (their 4-byte windows exceed 65,535)")
    # first[h]: the number of entries with a hash below h (a step function: filled by runs)
    first = array("H")
    for k, (h, _, _) in enumerate(entries):
        if len(first) <= h:
            first += array("H", [k]) * (h + 1 - len(first))
    first += array("H", [len(entries)]) * (65537 - len(first))
    starts = array("i", [0])
    starts.extend(accumulate(len(k) for k, _ in keywords))
    return (stride, bytes(bitmap), array("i", [x for e in entries for x in e]).tobytes(),
            first.tobytes(), b"".join(k for k, _ in keywords) + b"\0", starts.tobytes(),
            array("i", [c for _, c in keywords]).tobytes())


#: An array typecode of 4-byte unsigned items (``I`` on every usual platform).
_U32 = next(c for c in "IL" if array(c).itemsize == 4)
