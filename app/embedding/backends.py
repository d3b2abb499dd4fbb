"""Faster inference runtimes for the sentence-transformers model, exported from its own weights.

A backend replaces only the transformer of a loaded SentenceTransformer (its `model[0].model`);
tokenisation, length-sorted batching, pooling and normalisation stay sentence-transformers'
own. The export is made here, from the PyTorch weights already on disk, into a cache folder
named by a fingerprint of those weights, the recipe and the runtime versions: reproducible,
offline, never fetched. Every load is verified against the PyTorch model before the backend is
used, and refused when it disagrees or when a text's vector depends on its batch.

optimum is not used: its releases pin transformers and huggingface-hub below the locked ones,
and optimum-onnx and optimum-intel pin optimum incompatibly with each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
_RECIPE = 2  # bump when the export below changes: old folders are then never reused
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# fp32 runtimes agree with PyTorch to ~1e-6 (bf16 compute to ~1e-5); int8 weights or
# activations move a vector by about 1e-3 to 1e-2. Below these it is not the same model.
_MIN_COSINE = {"fp32": 0.9999, "int8": 0.99}
# A text's vector must not depend on what it is batched with: its cached vector would depend
# on which texts arrived with it. fp32 drifts ~1e-7 with padding; per-batch activation scales
# move it ~1e-2; bf16 kernels ~5e-4 unless the sequence length is a multiple of their block.
_BATCH_ATOL = 1e-5
# Sequences are padded to a multiple of this (token 0, masked out) for the exported runtimes:
# OpenVINO's bf16 kernels compute a token differently when the length is not a multiple of
# their block, so a text's vector moved with the longest text of its batch (measured 5e-4 on
# unit vectors at multiples of 1 and 8, 0 at 16 and 32; bench_encode's batch drift column).
_PAD_MULTIPLE = 16
VERIFY_TEXTS = (
    "wireless noise cancelling headphones",
    "Toy Story (1995) — Adventure, Animation, Children, Comedy, Fantasy",
    "organic sourdough bread recipe with a crusty loaf",
    "x",
    "Heat (1995) — Action, Crime, Thriller",
    "a used mountain bike for sale, barely ridden, new tyres and brakes, collection only",
    " ".join(["a much longer review that runs on and forces the batch to pad every row"] * 12),
    "Amélie (2001) — Comedy, Romance; 東京物語; ¿qué tal?",
)


class BackendError(RuntimeError):
    """A backend could not be exported, loaded or verified."""


@dataclass(frozen=True)
class Backend:
    name: str
    runtime: str  # "torch", "onnx" (ONNX Runtime) or "openvino"
    precision: str  # "fp32" or "int8"


def backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise BackendError(f"unknown embedding backend {name!r}: one of {', '.join(BACKENDS)}")
    runtime, _, precision = name.partition("-")
    return Backend(name, runtime, precision or "fp32")


def attach(model: Any, spec: Backend, *, source: Path, cache_dir: Path, threads: int
           ) -> tuple[str, float]:  # fmt: skip
    """Swap `model`'s PyTorch transformer for `spec`'s runtime. Returns what the cache key adds
    to the model id (naming the precision the runtime really computes in) and the verified
    minimum cosine against PyTorch. Raises BackendError, leaving `model` on PyTorch, when the
    runtime disagrees with PyTorch or makes a text's vector depend on its batch."""
    if spec.runtime == "torch":
        return "", 1.0  # the historical key: existing caches stay valid
    torch_module = model[0].model
    reference = _encode(model, list(VERIFY_TEXTS))
    folder = _exported(torch_module, model, spec, source=source, cache_dir=cache_dir)
    try:
        precision, cosine = _verified_runtime(model, spec, folder, reference, threads=threads)
    except BackendError:
        model[0].model = torch_module
        raise
    del torch_module
    _release_memory()
    return f"@{spec.runtime}-{precision}", cosine


def _verified_runtime(model: Any, spec: Backend, folder: Path, reference: np.ndarray, *,
                      threads: int) -> tuple[str, float]:  # fmt: skip
    """Put the export's runtime in `model` and verify it: in the CPU's own precision first and,
    where that is not fp32 and fails, in fp32. Returns the precision and the cosine."""
    config = model[0].model.config
    for exact in (False, True):
        runner, precision = _open(folder, spec, threads=threads, exact=exact)
        model[0].model = _Compiled(runner, config)
        try:
            return precision, _verify(model, spec, reference)
        except BackendError:
            if exact or precision in ("fp32", "int8"):  # nothing more exact to fall back to
                raise
    raise AssertionError("unreachable")


def _release_memory() -> None:
    """Hand the PyTorch weights' freed heap back to the system: the worker should not hold the
    model twice (glibc keeps freed memory in its arenas otherwise)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _encode(model: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False))  # fmt: skip


def _verify(model: Any, spec: Backend, reference: np.ndarray) -> float:
    together = _encode(model, list(VERIFY_TEXTS))
    cosine = float(np.min(np.sum(together * reference, axis=1)))
    if not cosine >= _MIN_COSINE[spec.precision]:
        raise BackendError(
            f"the {spec.name} export disagrees with the PyTorch model: minimum cosine "
            f"{cosine:.6f} < {_MIN_COSINE[spec.precision]}"
        )
    alone = np.vstack([_encode(model, [text]) for text in VERIFY_TEXTS])
    drift = float(np.max(np.abs(together - alone)))
    if not drift <= _BATCH_ATOL:
        raise BackendError(
            f"the {spec.name} backend gives a text a different vector in another batch "
            f"(max difference {drift:.2e} > {_BATCH_ATOL:g}): profiles would depend on batching"
        )
    return cosine


def _fingerprint(spec: Backend, source: Path) -> str:
    """Names the export: the weights, the recipe and every library that shapes the result."""
    digest = hashlib.sha256(f"{spec.name} recipe {_RECIPE}".encode())
    for name in ("torch", "transformers", "openvino", "onnxruntime", "onnx", "nncf"):
        try:
            digest.update(f" {name}={importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f" {name}=-".encode())
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.suffix in {".safetensors", ".bin", ".json"}:
            digest.update(path.relative_to(source).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _exported(torch_module: Any, model: Any, spec: Backend, *, source: Path,
              cache_dir: Path) -> Path:  # fmt: skip
    """The export folder for `spec`, made now if it does not exist yet."""
    folder = cache_dir / f"{spec.name}-{_fingerprint(spec, source)}"
    if (folder / "export.json").is_file():
        return folder
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=cache_dir))
    try:
        export(torch_module, model, spec, work)
        (work / "export.json").write_text(json.dumps({"backend": spec.name, "recipe": _RECIPE}))
        try:
            os.rename(work, folder)  # atomic; a concurrent process may have won the race
        except OSError:
            if not (folder / "export.json").is_file():
                raise
    except Exception as exc:
        raise BackendError(f"could not export the model for {spec.name}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def export(torch_module: Any, model: Any, spec: Backend, folder: Path) -> None:
    """Write `spec`'s export of the transformer `torch_module` (of `model`) into `folder`."""
    example = model.preprocess(["an example text", "and another, a little longer one"])
    example = {k: example[k] for k in _INPUTS}
    exporter = _EXPORTERS[(spec.runtime, spec.precision)]
    # Tracing warns about every data-dependent branch and deprecation it passes: noise here,
    # since the result is verified against PyTorch before it is used.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exporter(_HiddenStates(torch_module).eval(), example, folder)


def _export_onnx(module: Any, example: dict[str, Any], work: Path, *, int8: bool = False) -> None:
    import torch

    axes = {name: {0: "batch", 1: "sequence"} for name in _INPUTS}
    with torch.inference_mode():
        torch.onnx.export(
            module, (dict(example),), str(work / "model.onnx"), dynamo=False,
            input_names=list(_INPUTS), output_names=["last_hidden_state"],
            dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "sequence"}},
        )  # fmt: skip
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            work / "model.onnx", work / "model.int8.onnx", weight_type=QuantType.QInt8,
            per_channel=True, op_types_to_quantize=["MatMul"],
        )  # fmt: skip
        os.replace(work / "model.int8.onnx", work / "model.onnx")


def _export_openvino(module: Any, example: dict[str, Any], work: Path, *, int8: bool = False
                     ) -> None:  # fmt: skip
    import openvino as ov

    converted = ov.convert_model(module, example_input=dict(example))
    if int8:
        import nncf

        converted = nncf.compress_weights(converted)  # weights int8, activations stay fp32
    ov.save_model(converted, str(work / "model.xml"), compress_to_fp16=False)


_EXPORTERS: dict[tuple[str, str], Callable[[Any, dict[str, Any], Path], None]] = {
    ("onnx", "fp32"): _export_onnx,
    ("onnx", "int8"): lambda m, e, w: _export_onnx(m, e, w, int8=True),
    ("openvino", "fp32"): _export_openvino,
    ("openvino", "int8"): lambda m, e, w: _export_openvino(m, e, w, int8=True),
}


@dataclass(frozen=True)
class _Runner:
    run: Callable[[dict[str, Any]], Any]  # named int64 arrays -> last hidden states
    # Frees the runtime's activation buffers (OpenVINO keeps those of the largest batch: 100+
    # MiB for 64 60-word texts, where PyTorch returns its own after each batch).
    release: Callable[[], None] = lambda: None


def _open(folder: Path, spec: Backend, *, threads: int, exact: bool = False
          ) -> tuple[_Runner, str]:  # fmt: skip
    """The export's runner on `threads` threads, and the precision it computes in (`exact`:
    fp32 even where the CPU would choose bf16)."""
    try:
        if spec.runtime == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(
                str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
            return _Runner(lambda feeds: session.run(None, feeds)[0]), spec.precision
        import openvino as ov

        # No per-batch quantisation of activations (it makes a text's vector depend on its
        # batch). fp32 weights compute in the CPU's own choice, bf16 where it has bf16 units
        # (verified below like any export, and named in the cache key); int8 weights in f32,
        # as bf16 activations with them also depend on the batch.
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads,
                                  "PERFORMANCE_HINT": "LATENCY",
                                  "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}  # fmt: skip
        if spec.precision == "int8" or exact:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU", config)
        request = compiled.create_infer_request()  # callers are serialised by the embedder
        release = compiled.release_memory
        precision = spec.precision
        if spec.precision == "fp32":
            hint = compiled.get_property("INFERENCE_PRECISION_HINT")
            precision = {ov.Type.bf16: "bf16", ov.Type.f16: "fp16"}.get(hint, "fp32")
        return _Runner(lambda feeds: request.infer(feeds)[0], release), precision
    except ImportError as exc:
        raise BackendError(
            f"the {spec.name} backend needs a package that is not installed ({exc.name}): "
            f"install the project with its extra for it (README: Embedding backends)"
        ) from exc
    except Exception as exc:
        raise BackendError(f"could not load the {spec.name} export in {folder}: {exc}") from exc


def _torch_module_base() -> type:
    import torch

    return torch.nn.Module


class _HiddenStates(_torch_module_base()):  # type: ignore[misc]
    """The transformer reduced to its one output the pooling reads, for a clean export."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
        return self.inner(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


class _Compiled(_torch_module_base()):  # type: ignore[misc]
    """Stands where sentence-transformers expects the transformers model."""

    def __init__(self, runner: _Runner, config: Any) -> None:
        super().__init__()
        self._runner = runner
        self.config = config

    def release_memory(self) -> None:
        self._runner.release()

    def forward(self, **features: Any) -> dict[str, Any]:
        import torch

        ids = features["input_ids"]
        rows, length = ids.shape
        padded = -(-length // _PAD_MULTIPLE) * _PAD_MULTIPLE
        feeds = {}
        for name in _INPUTS:
            value = features.get(name)
            feed = np.zeros((rows, padded), np.int64)  # padding: token 0, masked out
            if value is not None:
                feed[:, :length] = value.numpy()
            feeds[name] = feed
        hidden = np.array(self._runner.run(feeds), np.float32)[:, :length]
        return {"last_hidden_state": torch.from_numpy(np.ascontiguousarray(hidden))}
