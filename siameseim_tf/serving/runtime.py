"""The exported ONNX encoder on ONNX Runtime, and a micro-batcher for concurrent requests."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable

import numpy as np

from siameseim_tf.serving import contract
from siameseim_tf.serving.preprocessing import IMAGENET_MEAN, IMAGENET_STD, resize_size


class ModelMismatch(RuntimeError):
    """The ONNX file was not exported by siameseim-tf or assumes other preprocessing."""


# --device -> ONNX Runtime execution providers, in order of preference.
DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class DeviceUnavailable(RuntimeError):
    """The requested execution provider is not in this onnxruntime build."""


def providers_for(device: str, available: list[str]) -> list[str]:
    """The providers for ``device`` ("auto": the best available GPU provider, else CPU).

    An explicit GPU device whose provider this onnxruntime lacks is an error, not a silent
    CPU fallback (``pip install onnxruntime-gpu`` instead of ``onnxruntime``).
    """
    if device == "auto":
        for name in ("cuda", "cpu"):
            if DEVICE_PROVIDERS[name][0] in available:
                return DEVICE_PROVIDERS[name]
    if device not in DEVICE_PROVIDERS:
        raise DeviceUnavailable(f"--device must be auto, {', '.join(DEVICE_PROVIDERS)}")
    wanted = DEVICE_PROVIDERS[device]
    if wanted[0] not in available:
        raise DeviceUnavailable(
            f"--device {device}: {wanted[0]} is not in this onnxruntime (available: "
            f"{', '.join(available)}); for NVIDIA GPUs: pip uninstall -y onnxruntime && "
            "pip install onnxruntime-gpu"
        )
    return [p for p in wanted if p in available]


class EncoderRuntime:
    """An ONNX Runtime session of an exported encoder plus the metadata it was exported with.

    Args:
        path: ``.onnx`` file written by :func:`siameseim_tf.export.onnx.export_onnx`.
        threads: ONNX Runtime intra-op threads (0: its default, all cores).
        spinning: let idle ONNX Runtime threads busy-wait for work.
        device: "cpu", "cuda", "tensorrt" or "auto" (see :func:`providers_for`).
    """

    def __init__(self, path: str, threads: int = 0, spinning: bool = False, device: str = "cpu"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Busy-waiting worker threads cut latency on dedicated cores but halved batch-1
        # speed on a shared 2-core machine (139 -> 71 ms ViT-S/16 without it): off by default.
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
        providers = providers_for(device, ort.get_available_providers())
        self.session = ort.InferenceSession(path, options, providers=providers)
        self.providers = self.session.get_providers()
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_metadata(path)
        self.image_size = int(self.metadata[contract.META_IMAGE_SIZE])
        self.embed_dim = int(self.metadata.get("siameseim.embed_dim", -1))
        patch = int(self.metadata.get("siameseim.patch_size", 0))
        self.num_patches = (self.image_size // patch) ** 2 if patch else -1

    def _check_metadata(self, path: str) -> None:
        """Refuses models whose preprocessing differs from the shared definition."""
        meta = self.metadata
        if contract.META_IMAGE_SIZE not in meta:
            raise ModelMismatch(
                f"{path} has no siameseim metadata; export it with `siameseim export --format onnx`"
            )
        expected = {
            contract.META_MEAN: list(IMAGENET_MEAN),
            contract.META_STD: list(IMAGENET_STD),
            contract.META_OUTPUTS: list(contract.OUTPUT_NAMES),
        }
        for key, value in expected.items():
            if json.loads(meta.get(key, "null")) != value:
                raise ModelMismatch(f"{path}: metadata {key}={meta.get(key)} != {value}")
        size = int(meta[contract.META_IMAGE_SIZE])
        if int(meta.get(contract.META_RESIZE_SIZE, -1)) != resize_size(size):
            raise ModelMismatch(
                f"{path}: resize size {meta.get(contract.META_RESIZE_SIZE)} != {resize_size(size)}"
            )

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """float32 [B, S, S, 3] preprocessed -> {"embedding", "cls", "patch_tokens"}."""
        values = self.session.run(list(contract.OUTPUT_NAMES), {contract.ONNX_INPUT_NAME: images})
        return dict(zip(contract.OUTPUT_NAMES, values))


def _metrics():
    """Prometheus metrics of the model calls (served at /metrics beside KServe's own)."""
    from prometheus_client import Histogram

    global _METRICS
    if _METRICS is None:
        _METRICS = (
            Histogram(
                "siameseim_batch_images",
                "images per ONNX Runtime call (micro-batching merges concurrent requests)",
                buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            ),
            Histogram(
                "siameseim_model_seconds",
                "wall time of one ONNX Runtime call",
                buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10),
            ),
        )
    return _METRICS


_METRICS = None


class MicroBatcher:
    """Runs concurrent requests' images through the model together.

    A request's images wait at most ``timeout_ms`` for others to join; a batch closes
    at ``max_batch`` images (a single larger request runs as it is). One batch runs at a
    time, in a worker thread, so the event loop keeps accepting requests meanwhile.

    Args:
        run: float32 [B, S, S, 3] -> dict of [B, ...] arrays.
        max_batch: images per model call; 1 disables batching.
        timeout_ms: how long the first image of a batch waits for more.
    """

    def __init__(
        self, run: Callable[[np.ndarray], dict], max_batch: int = 32, timeout_ms: float = 2.0
    ):
        self.run, self.max_batch, self.timeout = run, max_batch, timeout_ms / 1000.0
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        # Images per model call, the most recent ones (tests, stats); /metrics has them all.
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=10_000)

    def _call(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import time

        sizes, seconds = _metrics()
        self.batch_sizes.append(len(images))
        sizes.observe(len(images))
        start = time.perf_counter()
        try:
            return self.run(images)
        finally:
            seconds.observe(time.perf_counter() - start)

    async def submit(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for ``images`` [n, S, S, 3], possibly computed in a larger batch."""
        if self.max_batch <= 1:
            return await asyncio.to_thread(self._call, images)
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((images, future))
        return await future

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        """Waits for one item, then gathers more until the batch is full or time is up."""
        loop = asyncio.get_running_loop()
        items = [await self._queue.get()]
        count, deadline = len(items[0][0]), loop.time() + self.timeout
        while count < self.max_batch:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            items.append(item)
            count += len(item[0])
        return items

    async def _work(self) -> None:
        while True:
            items = await self._collect()
            try:
                batch = np.concatenate([images for images, _ in items])  # [sum n, S, S, 3]
                outputs = await asyncio.to_thread(self._call, batch)
            except Exception as error:  # noqa: BLE001  (handed to every waiting request)
                for _, future in items:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for images, future in items:
                stop = start + len(images)
                if not future.done():  # the client may have gone away
                    future.set_result({k: v[start:stop] for k, v in outputs.items()})
                start = stop
