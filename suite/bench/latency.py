"""Latency of one model at one batch size: onnxruntime on a named provider, or eager PyTorch.

Both benchmarks warm up, synchronise the device around every timed call, and return the same dict::

    {"runtime", "provider", "available": True, "batch_size", "warmup", "repeats",
     "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "throughput",   # throughput = batch_size / mean latency
     "peak_rss_bytes", "peak_gpu_mem_bytes", "gpu_mem_source", "model_bytes", ...}

so rows from both runtimes sit in one table. Latency is wall time of one call with host inputs (the host-to-device
copy included) unless ``io_binding`` keeps inputs and outputs on the device. Memory: on the CPU, process RSS sampled
after every timed call; on CUDA, PyTorch's allocator peak for eager PyTorch, and for onnxruntime (which has no
memory API) this process's usage from ``nvidia-smi``, or device-wide usage from ``torch.cuda.mem_get_info``, or null.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

# Short names users type -> onnxruntime execution providers.
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
GPU_PROVIDERS = ("cuda", "tensorrt")
# Token ids drawn from [5, 100): above BERT's special tokens and inside any vocabulary of 100 or more pieces.
TOKEN_ID_RANGE = (5, 100)
DEFAULT_SEQ_LEN = 128
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def short_provider(provider: str) -> str:
    """``"CUDAExecutionProvider"`` or ``"cuda"`` -> ``"cuda"``; unknown names pass through lower-cased."""
    by_long = {v.lower(): k for k, v in PROVIDERS.items()}
    return by_long.get(provider.lower(), provider.lower())


def provider_available(provider: str) -> bool:
    """Whether this onnxruntime build offers ``provider`` (short or full name)."""
    import onnxruntime as ort

    return PROVIDERS.get(short_provider(provider)) in ort.get_available_providers()


def physical_cores() -> int:
    """Physical core count (psutil), falling back to logical cores where psutil cannot tell."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def tokenizer_vocab_size(export_dir: Path) -> int | None:
    """Vocabulary size of ``<dir>/tokenizer/tokenizer.json``, so synthetic token ids stay inside the embedding."""
    path = export_dir / "tokenizer" / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path)).get_vocab_size()


def synth_inputs(
    spec: Mapping[str, Any], batch_size: int, seq_len: int | None = None, vocab_size: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Inputs shaped by ``spec["inputs"]``: token ids in ``TOKEN_ID_RANGE`` (clipped to ``vocab_size``), full
    attention masks, zero segment ids, N(0, 1) float32 images.

    Dynamic axes: the first is the batch; the others of an image input come from ``spec["image_size"]`` and the
    rest are the sequence length (``seq_len``, else ``spec["max_length"]``, else 128).
    """
    rng = np.random.default_rng(seed)
    seq_len = seq_len or spec.get("max_length") or DEFAULT_SEQ_LEN
    image_size = spec.get("image_size")
    low, high = TOKEN_ID_RANGE
    if vocab_size is not None:
        high = min(high, vocab_size)
        low = min(low, high - 1)
    feeds = {}
    for entry in spec["inputs"]:
        shape = []
        for axis, dim in enumerate(entry["shape"]):
            if isinstance(dim, int):
                shape.append(dim)
            elif axis == 0:
                shape.append(batch_size)
            elif entry["dtype"] == "float32" and image_size:
                shape.append(image_size[axis - (len(entry["shape"]) - len(image_size))])
            else:
                shape.append(seq_len)
        feeds[entry["name"]] = _fill(entry["name"], entry["dtype"], shape, rng, low, high)
    return feeds


def _fill(name: str, dtype: str, shape: list[int], rng: np.random.Generator, low: int, high: int) -> np.ndarray:
    if dtype == "float32":
        return rng.standard_normal(shape, dtype=np.float32)
    if name == "attention_mask":
        return np.ones(shape, dtype=np.int64)
    if name == "token_type_ids":
        return np.zeros(shape, dtype=np.int64)
    return rng.integers(low, high, size=shape, dtype=np.int64)


def summarize(seconds: Sequence[float], batch_size: int) -> dict[str, float]:
    """Percentiles (linear interpolation, numpy's default) of per-call latency and items/s at the mean."""
    ms = np.asarray(seconds) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    mean = float(ms.mean())
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": mean,
        "min_ms": float(ms.min()),
        "throughput": batch_size / (mean / 1e3),
    }


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def gpu_memory_used() -> tuple[int | None, str | None]:
    """GPU memory this process uses, and where the number came from.

    ``nvidia-smi --query-compute-apps`` gives per-process usage (all allocators, onnxruntime's included); inside
    containers it often lists no pids, so the fallback is device-wide usage from ``torch.cuda.mem_get_info``,
    which counts other processes too. ``(None, None)`` when neither is available.
    """
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True).stdout
        except (subprocess.SubprocessError, OSError):
            out = ""
        for line in out.splitlines():
            pid, _, mib = line.partition(",")
            if pid.strip() == str(os.getpid()) and mib.strip().isdigit():
                return int(mib) * 2**20, "nvidia-smi (this process)"
    try:
        import torch
    except ImportError:
        return None, None
    if not torch.cuda.is_available():
        return None, None
    free, total = torch.cuda.mem_get_info()
    return total - free, "torch.cuda.mem_get_info (device-wide)"


def _session(model_path: Path, provider: str, intra_op_threads: int, fp16: bool) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # CPU fallback of a few nodes is expected and not worth a warning per session
    chain: list[Any] = [PROVIDERS[provider]]
    if provider == "tensorrt":
        chain = [(PROVIDERS["tensorrt"], {"trt_fp16_enable": fp16}), PROVIDERS["cuda"]]
    if provider != "cpu":
        chain.append(PROVIDERS["cpu"])  # nodes a GPU provider lacks run on the CPU instead of failing the session
    return ort.InferenceSession(str(model_path), sess_options=options, providers=chain)


def _ort_runner(session: Any, feeds: dict[str, np.ndarray], device: str, io_binding: bool) -> Callable[[], object]:
    import onnxruntime as ort

    if not io_binding:
        return lambda: session.run(None, feeds)
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, 0))
    for output in session.get_outputs():
        binding.bind_output(output.name, device)
    return lambda: session.run_with_iobinding(binding)


@dataclass
class Timed:
    """One configuration under test: its call (which cycles through its inputs), how to synchronise, how to sample
    memory, and the row fields known before timing."""

    call: Callable[[], object]
    sync: Callable[[], None]
    sample: Callable[[], int | None]
    row: dict[str, Any]
    after: Callable[[int | None], dict[str, Any]]  # memory fields from the largest sample
    inputs: int = 1  # distinct input batches the call cycles through; warm-up sees each of them


INTERLEAVE_BLOCK = 5  # timed calls per configuration and turn
SETTLE_SECONDS = 0.05  # idle pause before each turn: the previous runtime's worker threads stop spinning


def time_interleaved(
    timed: Sequence[Timed], warmup: int, repeats: int, block: int = INTERLEAVE_BLOCK, settle: float = SETTLE_SECONDS
) -> list[dict[str, Any]]:
    """Warm every configuration up, then time them in turns of ``block`` calls (a a a, b b b, c c c, a a a, ...), so
    a burst of load on the machine hits all of them alike instead of one long block; one row each.

    Each turn starts after ``settle`` seconds idle and one untimed call. The runtime that ran just before may still
    hold the cores: every onnxruntime session has its own worker threads and they, like OpenMP's, spin for a while
    after a call. Without the pause the spinning of one configuration is charged to the next: on the 2-core
    development machine an int8 session timed right after an fp32 session's turn took about twice as long per call
    as after the pause or alone (``benchmarks/interleave_settle.py``; numbers in docs/results/cpu_text_students.md).
    """
    for t in timed:
        # Every distinct input shape once at least: a runtime's first call at a new shape builds kernels or plans.
        for _ in range(max(warmup, t.inputs)):
            t.call()
        t.sync()
    seconds: list[list[float]] = [[] for _ in timed]
    peaks: list[int | None] = [None for _ in timed]
    while timed and len(seconds[0]) < repeats:
        for i, t in enumerate(timed):
            if settle and len(timed) > 1:
                time.sleep(settle)
            t.call()  # the turn's untimed first call
            t.sync()
            for _ in range(min(block, repeats - len(seconds[i]))):
                start = time.perf_counter()
                t.call()
                t.sync()
                seconds[i].append(time.perf_counter() - start)
                used = t.sample()  # outside the timed span: reading /proc or nvidia-smi costs more than a tiny model
                if used is not None:
                    peaks[i] = used if peaks[i] is None else max(peaks[i], used)
    return [{**t.row, "warmup": warmup, "repeats": repeats, **summarize(s, t.row["batch_size"]), **t.after(peak)}
            for t, s, peak in zip(timed, seconds, peaks, strict=True)]  # fmt: skip


def _cycle(feeds: Sequence[Any]) -> Callable[[], Any]:
    position = itertools.cycle(range(len(feeds)))
    return lambda: feeds[next(position)]


def prepare_onnx(
    model_path: str | Path,
    spec: Mapping[str, Any],
    provider: str,
    batch_size: int,
    seq_len: int | None = None,
    io_binding: bool = False,
    intra_op_threads: int | None = None,
    vocab_size: int | None = None,
    feeds: Sequence[dict[str, np.ndarray]] | None = None,
) -> Timed | dict[str, Any]:
    """A :class:`Timed` onnxruntime session on ``provider`` ("cpu", "cuda", "tensorrt" or the full name), or
    ``{"provider", "available": False, "reason"}`` when this onnxruntime build lacks the provider.

    Inputs: ``feeds`` (real batches, used in turn), else synthetic ones shaped by ``spec`` (:func:`synth_inputs`)
    with token ids below ``vocab_size`` (default: the size of the tokenizer exported next to the model).
    ``intra_op_threads`` defaults to the physical core count. Dtypes follow the session (fp16 graphs get fp16).
    """
    name = short_provider(provider)
    if name not in PROVIDERS or not provider_available(name):
        return {"provider": name, "available": False, "reason": "not in onnxruntime.get_available_providers()"}
    model_path = Path(model_path)
    vocab_size = vocab_size or tokenizer_vocab_size(model_path.parent)
    threads = intra_op_threads or physical_cores()
    session = _session(model_path, name, threads, fp16=".fp16." in model_path.name)
    types = {i.name: _ORT_DTYPES[i.type] for i in session.get_inputs()}
    batches = list(feeds) if feeds else [synth_inputs(spec, batch_size, seq_len, vocab_size)]
    batches = [{k: v.astype(types[k]) for k, v in b.items() if k in types} for b in batches]
    on_gpu = name in GPU_PROVIDERS
    next_run = _cycle([_ort_runner(session, b, "cuda" if on_gpu else "cpu", io_binding) for b in batches])

    def call() -> object:
        return next_run()()

    row = {
        "runtime": "onnxruntime", "provider": name, "available": True,
        "active_providers": [short_provider(p) for p in session.get_providers()], "batch_size": batch_size,
        "seq_len": _seq_len(batches), "inputs": "real" if feeds else "padded", "io_binding": io_binding,
        "intra_op_threads": threads,
    }  # fmt: skip

    def after(peak_rss: int | None) -> dict[str, Any]:
        # onnxruntime's CUDA arena only grows, so GPU usage read once after the timed calls is the peak.
        gpu_bytes, gpu_source = gpu_memory_used() if on_gpu else (None, None)
        return {"peak_rss_bytes": _rss() if on_gpu else peak_rss, "peak_gpu_mem_bytes": gpu_bytes,
                "gpu_mem_source": gpu_source, "model_bytes": model_path.stat().st_size}  # fmt: skip

    return Timed(call, lambda: None, (lambda: None) if on_gpu else _rss, row, after, inputs=len(batches))


def benchmark_onnx(
    model_path: str | Path,
    spec: Mapping[str, Any],
    provider: str,
    batch_size: int,
    seq_len: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
    io_binding: bool = False,
    intra_op_threads: int | None = None,
    vocab_size: int | None = None,
) -> dict[str, Any]:
    """Latency of one onnxruntime configuration (see :func:`prepare_onnx`), timed on its own."""
    timed = prepare_onnx(model_path, spec, provider, batch_size, seq_len, io_binding, intra_op_threads, vocab_size)
    return timed if isinstance(timed, dict) else time_interleaved([timed], warmup, repeats)[0]


def _seq_len(batches: Sequence[Mapping[str, Any]]) -> int | None:
    """The (median) time axis of 2-D token inputs; None for images."""
    lengths = [int(v.shape[1]) for b in batches for v in list(b.values())[:1] if len(v.shape) == 2]
    return int(np.median(lengths)) if lengths else None


def prepare_torch(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
    device: str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    batches: Sequence[Sequence[torch.Tensor]] | None = None,
    cuda_graph: bool = False,
) -> Timed:
    """A :class:`Timed` eager PyTorch forward under ``torch.inference_mode``, synchronising CUDA around every call.

    ``example_inputs`` are positional (a sequence) or keyword (a mapping) arguments; the batch size is the first
    axis of the first one. ``batches`` (positional, real lengths) replace them in turn when given.
    ``autocast_dtype`` (e.g. ``torch.float16``) runs the forward under ``torch.autocast``. Threads are the caller's
    (``torch.set_num_threads``); the row records them. ``cuda_graph`` (CUDA, one batch): the forward is captured
    once in a CUDA graph and replayed (see :func:`_graph_replay`).
    """
    import torch

    model = model.eval().to(device)
    values = list(example_inputs.values()) if isinstance(example_inputs, Mapping) else list(example_inputs)
    keys = list(example_inputs) if isinstance(example_inputs, Mapping) else None
    moved = [[v.to(device) for v in b] for b in (batches or [values])]
    next_inputs = _cycle(moved)
    device_type = torch.device(device).type
    on_gpu = device_type == "cuda"
    if cuda_graph and not (on_gpu and len(moved) == 1):
        raise ValueError("cuda_graph: needs device 'cuda' and one input batch (a graph replays fixed shapes)")

    def forward(inputs: list[torch.Tensor]) -> object:
        with torch.autocast(device_type, autocast_dtype, enabled=autocast_dtype is not None):
            return model(**dict(zip(keys, inputs, strict=True))) if keys else model(*inputs)

    def call() -> object:
        with torch.inference_mode():
            return forward(next_inputs())

    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    graph_fields: dict[str, Any] = {}
    if cuda_graph:
        call, diff = _graph_replay(forward, moved[0])
        graph_fields = {"cuda_graph": True, "graph_max_abs_diff": diff}
    lengths = [int(b[0].shape[1]) for b in moved if b[0].dim() == 2]
    row = {
        "runtime": "torch", "provider": f"torch-{device_type}", "available": True,
        "batch_size": int(values[0].shape[0]), "seq_len": int(np.median(lengths)) if lengths else None,
        "inputs": "real" if batches else "padded",
        "autocast_dtype": str(autocast_dtype).removeprefix("torch.") if autocast_dtype else None,
        "intra_op_threads": torch.get_num_threads(), **graph_fields,
    }  # fmt: skip

    def after(peak: int | None) -> dict[str, Any]:
        return {
            "peak_rss_bytes": _rss() if on_gpu else peak,
            "peak_gpu_mem_bytes": torch.cuda.max_memory_allocated() if on_gpu else None,
            "gpu_mem_source": "torch.cuda.max_memory_allocated" if on_gpu else None,
            "model_bytes": sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]),
        }

    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    return Timed(call, sync, (lambda: None) if on_gpu else _rss, row, after, inputs=len(moved))


def benchmark_torch(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
    device: str = "cpu",
    warmup: int = 10,
    repeats: int = 50,
    autocast_dtype: torch.dtype | None = None,
    cuda_graph: bool = False,
) -> dict[str, Any]:
    """PyTorch latency of one configuration (see :func:`prepare_torch`), timed on its own."""
    timed = prepare_torch(model, example_inputs, device, autocast_dtype, cuda_graph=cuda_graph)
    return time_interleaved([timed], warmup, repeats)[0]


def _graph_replay(forward: Callable[[list[torch.Tensor]], Any], static: list[torch.Tensor]) -> tuple[Callable, float]:
    """``forward`` on ``static`` captured once in a CUDA graph: a call that copies a request into the static input
    buffers and replays, and the largest difference of the replayed outputs from an eager call on the same inputs.

    A small student at batch 1 is launch-bound on a GPU: eager PyTorch pays the CPU cost of launching each of its
    hundreds of kernels on every call, a replayed graph launches them all at once.
    """
    import torch

    request = [s.clone() for s in static]  # a "new" request, copied in on every call as a server would
    with torch.no_grad():
        eager = _output_tensors(forward(static))
        side = torch.cuda.Stream()  # capture wants its warm-up on a side stream (cuDNN / cuBLAS workspaces)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                forward(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = _output_tensors(forward(static))
        graph.replay()
        torch.cuda.synchronize()
    diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(captured, eager, strict=True))

    def call() -> object:
        for buffer, fresh in zip(static, request, strict=True):
            buffer.copy_(fresh, non_blocking=True)
        graph.replay()
        return captured

    return call, diff


def _output_tensors(output: Any) -> list[torch.Tensor]:
    """The tensors of a model's output (a tensor, a tuple, a dict or a Hugging Face ModelOutput), in order."""
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    items = output.values() if isinstance(output, Mapping) else output
    return [t for item in items for t in _output_tensors(item)]
