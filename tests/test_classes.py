"""Error events and ``error.class``, both implementations: real PyTorch, TensorFlow, JAX,
NCCL, kernel and torchrun messages per class; ordinary INFO lines stay ordinary."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

import _fastparse
from _fastparse._classes import BUILTIN_CLASSES, build_classes
from tests.test_fastparse import CPARSER, T0, docs, impl, make, needs_both

__all__ = ["impl"]

#: class -> lines seen in real runs (message text as the libraries print it)
REAL: dict[str, list[str]] = {
    "accelerator_oom": [
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
        "capacity of 79.15 GiB of which 1.02 GiB is free.",
        "RuntimeError: CUDA error: out of memory",
        "torch.cuda.OutOfMemoryError: HIP out of memory. Tried to allocate 512.00 MiB (GPU 0; 63.98 GiB total)",
        "RuntimeError: MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.20 GB)",
        "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with "
        "shape[32,1024,1024] and type float on /job:localhost/replica:0/task:0/device:GPU:0",
        "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
        "17179869184 bytes.",
        "XlaRuntimeError: RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory "
        "space hbm. Used 17.5G of 15.48G hbm.",
        "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    ],
    "host_oom": [
        "Out of memory: Killed process 123456 (python) total-vm:98765432kB, anon-rss:87654321kB",
        "python invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0",
        "Memory cgroup out of memory: Killed process 4242 (python3)",
        "MemoryError: Unable to allocate 37.3 GiB for an array with shape (5000000000,) and data type float64",
        "terminate called after throwing an instance of 'std::bad_alloc'",
        "torch.distributed.elastic.multiprocessing.api: Signal 9 (SIGKILL) received by PID 1234",
    ],
    "nan_loss": [
        "Loss is nan, stopping training",
        "RuntimeError: The total norm of order 2.0 for gradients from `parameters` is non-finite, so it "
        "cannot be clipped. To disable this error and scale the gradients by the non-finite norm anyway, "
        "set `error_if_nonfinite=False`",
        "RuntimeError: Function 'MulBackward0' returned nan values in its 0th output.",
        "tensorflow.python.framework.errors_impl.InvalidArgumentError: Tensor had NaN values",
        "FloatingPointError: invalid value (nan) encountered in jit(train_step)",
        "Gradient overflow.  Skipping step, loss scaler 0 reducing loss scale to 32768.0",
        "Batch 1234: Invalid loss, terminating training",
    ],
    "load_failure": [
        "RuntimeError: Error(s) in loading state_dict for ResNet:\n\tsize mismatch for fc.weight: copying "
        "a param with shape torch.Size([10, 512]) from checkpoint",
        "RuntimeError: Error(s) in loading state_dict for GPT2LMHeadModel:\n\tMissing key(s) in state_dict: "
        '"lm_head.weight".',
        "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory",
        "_pickle.UnpicklingError: Weights only load failed. Re-running `torch.load` with `weights_only` set "
        "to `False` will likely succeed",
        "OSError: Can't load tokenizer for 'bert-base-uncased'. If you were trying to load it from",
        "safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge",
        "tensorflow.python.framework.errors_impl.NotFoundError: Unsuccessful TensorSliceReader constructor: "
        "Failed to find any matching files for ckpt/model.ckpt-1000",
    ],
    "data_loading": [
        "RuntimeError: DataLoader worker (pid 12345) is killed by signal: Killed.",
        "RuntimeError: DataLoader worker (pid(s) 4321, 4322) exited unexpectedly",
        "ValueError: Caught ValueError in DataLoader worker process 3.",
        "tensorflow.python.framework.errors_impl.DataLossError: corrupted record at 12345",
        "datasets.exceptions.DatasetGenerationError: An error occurred while generating the dataset",
        "pyarrow.lib.ArrowInvalid: JSON parse error: Invalid value. in row 0",
        "UnicodeDecodeError: 'utf-8' codec can't decode byte 0x89 in position 0: invalid start byte",
    ],
    "input_error": [
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x512 and 256x10)",
        "RuntimeError: Sizes of tensors must match except in dimension 1. Expected size 32 but got size 16",
        "RuntimeError: The size of tensor a (128) must match the size of tensor b (64) at non-singleton "
        "dimension 1",
        "ValueError: Expected input batch_size (32) to match target batch_size (16).",
        "IndexError: index out of range in self",
        "tensorflow.python.framework.errors_impl.InvalidArgumentError: Incompatible shapes: [32,10] vs. [16,10]",
        "PIL.UnidentifiedImageError: cannot identify image file '/data/train/img_0042.jpg'",
        "OSError: image file is truncated (18 bytes not processed)",
        "ValueError: Asking to pad but the tokenizer does not have a padding token.",
    ],
    "timeout": [
        "[Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1234, OpType=ALLREDUCE, "
        "NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600045 milliseconds before timing out.",
        "torch.distributed.DistStoreError: Timed out after 901 seconds waiting for clients. 3/4 clients joined.",
        "RuntimeError: Timed out initializing process group in store based barrier on rank 0",
        "tensorflow.python.framework.errors_impl.DeadlineExceededError: Deadline Exceeded",
        "grpc: status = StatusCode.DEADLINE_EXCEEDED",
    ],
    "distributed": [
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/NCCLUtils.hpp:219, "
        "unhandled system error (run with NCCL_DEBUG=INFO for details)",
        "RuntimeError: NCCL communicator was aborted on rank 2.",
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:",
        "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1) local_rank: 0 (pid: 4242) "
        "of binary: /usr/bin/python3",
        "RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:598] Connection closed by peer "
        "[10.0.0.2]:29500",
    ],
}

#: INFO lines of healthy runs: none may become an error event.
ORDINARY = [
    "[I ProcessGroupNCCL.cpp:686] [Rank 0] ProcessGroupNCCL initialization options: NCCL_ASYNC_ERROR_HANDLING: 1",
    "INFO:torch.distributed.elastic.agent.server.api:[default] starting workers for entrypoint: python",
    "torch.distributed.distributed_c10d: Added key: store_based_barrier_key:1 to store for rank: 0",
    "gpu1:1234:1234 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>",
    "Loading checkpoint shards: 100%|##########| 4/4 [00:05<00:00,  1.31s/it]",
    "Saving model checkpoint to /ckpt/checkpoint-500",
    "Loaded checkpoint from /ckpt/step_1000.pt (epoch 3)",
    "Using a DataLoader with 8 workers and pin_memory=True",
    "Tokenizer loaded: vocab size 50257",
    "Epoch 3/10 - step 1200 - loss=0.4321 - accuracy=0.912 - lr=3e-4",
    "Evaluating: reading 10000 images from /data/val",
    "Memory usage: allocated 12.3 GiB, reserved 14.0 GiB",
    "Timer: forward 12.3 ms, backward 25.1 ms",
]

PY = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def _doc(impl: ModuleType, message: str, level: str = "INFO", **kw: Any) -> tuple[dict[str, Any], Any]:
    line = f"2026-11-25 07:30:01,123 - trainer - {level} - {message}".encode()
    p = make(impl, format="python", timezone="UTC", multiline="none", **kw)
    b = p.feed(line.replace(b"\n", b" ") + b"\n", T0)
    return docs(b)[0], (b, p)


@pytest.mark.parametrize(("cls", "message"), [(c, m) for c, ms in REAL.items() for m in ms])
def test_real_messages_get_their_class(impl: ModuleType, cls: str, message: str) -> None:
    d, (b, p) = _doc(impl, message)
    assert d["error"] == {"class": cls}
    assert p.error_classes[b.ev_class[0] - 1] == cls
    assert b.ev_level.tolist() == [3]  # an INFO line that names a failure is an error event


@pytest.mark.parametrize("message", ORDINARY)
def test_ordinary_info_lines_are_not_errors(impl: ModuleType, message: str) -> None:
    d, (b, _) = _doc(impl, message)
    assert "error" not in d and b.ev_class.tolist() == [0]


def test_level_makes_an_error_event_of_class_other(impl: ModuleType) -> None:
    for level, code, error in (("ERROR", 5, True), ("CRITICAL", 6, True), ("FATAL", 6, True),
                               ("WARNING", 4, False), ("WARN", 4, False), ("DEBUG", 2, False)):
        d, (b, p) = _doc(impl, "something happened", level)
        assert b.ev_level.tolist() == [code]
        assert ("error" in d) is error
        if error:
            assert d["error"] == {"class": "other"} and b.ev_class.tolist() == [len(p.error_classes)]
    assert _fastparse.LEVEL_NAMES[5] == "error"


def test_first_class_in_table_order_wins(impl: ModuleType) -> None:
    # a CUDA OutOfMemoryError also says MemoryError: accelerator_oom comes first
    d, _ = _doc(impl, "torch.cuda.OutOfMemoryError: CUDA out of memory. (host MemoryError too)")
    assert d["error"]["class"] == "accelerator_oom"
    d, _ = _doc(impl, "NCCL error: Watchdog caught collective operation timeout")
    assert d["error"]["class"] == "timeout"


def test_case_insensitive_and_in_stack(impl: ModuleType) -> None:
    d, _ = _doc(impl, "cuda OUT of MEMORY")
    assert d["error"]["class"] == "accelerator_oom"
    data = (b"2026-11-25 07:30:01,123 - trainer - INFO - step failed\n"
            b"Traceback (most recent call last):\n"
            b'  File "train.py", line 3, in <module>\n'
            b"RuntimeError: DataLoader worker (pid 77) exited unexpectedly\n"
            b"2026-11-25 07:30:02,000 - trainer - INFO - next\n")
    p = make(impl, format="python", timezone="UTC", multiline="auto")
    ds = docs(p.feed(data, T0)) + docs(p.flush(T0))
    assert ds[0]["error"]["class"] == "data_loading" and ds[0]["error"]["type"] == "RuntimeError"
    assert "error" not in ds[1]


def test_user_classes(impl: ModuleType) -> None:
    extra = {"disk_full": ["No space left on device"], "nan_loss": ["loss went haywire"]}
    d, (b, p) = _doc(impl, "OSError: [Errno 28] No space left on device", error_classes=extra)
    assert p.error_classes[0] == "disk_full" and p.error_classes[-1] == "other"
    assert d["error"]["class"] == "disk_full" and b.ev_class.tolist() == [1]
    d, _ = _doc(impl, "the LOSS WENT HAYWIRE at step 7", error_classes=extra)
    assert d["error"]["class"] == "nan_loss"
    with pytest.raises(ValueError, match="other"):
        make(impl, error_classes={"other": ["abcd"]})
    with pytest.raises(ValueError, match="4 bytes"):
        make(impl, error_classes={"x": ["ab"]})


def test_plain_format_and_keywords_across_the_line(impl: ModuleType) -> None:
    p = make(impl)
    lines = [m.replace("\n", " ") for ms in REAL.values() for m in ms] + ORDINARY
    b = p.feed("\n".join(lines).encode() + b"\n", T0)
    want = [p.error_classes.index(c) + 1 for c, ms in REAL.items() for _ in ms] + [0] * len(ORDINARY)
    assert b.ev_class.tolist() == want


def test_table_is_data() -> None:
    names = [n for n, _ in BUILTIN_CLASSES]
    assert names == ["accelerator_oom", "host_oom", "nan_loss", "load_failure", "data_loading",
                     "input_error", "timeout", "distributed"]
    assert build_classes().names == (*names, "other")
    for _, words in BUILTIN_CLASSES:
        assert all(w == w.lower() and len(w) >= 8 for w in words)


@needs_both
def test_twins_agree_on_classes() -> None:
    import random

    rng = random.Random(4)
    words = [w for _, ws in BUILTIN_CLASSES for w in ws]
    lines = []
    for _ in range(3000):
        w = rng.choice(words)
        w = "".join(c.upper() if rng.random() < 0.3 else c for c in w)
        pre = "x" * rng.randrange(0, 9)
        lines.append(rng.choice([pre + w + " tail", pre + w[: len(w) // 2], "nothing here " + pre]))
    data = "\n".join(lines).encode() + b"\n"
    out = []
    for m in (CPARSER, __import__("_fastparse._pyparser", fromlist=["Parser"])):
        b = make(m).feed(data, T0)
        out.append((b.body, b.ev_class.tolist()))
    assert out[0] == out[1]
