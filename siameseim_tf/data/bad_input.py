"""Bad input: the error raised before training, the skip report, and the header pre-scan.

Policy (docs/data_pipeline.md): every image file is checked cheaply with PIL before
training (header parsed, size read, the file's end checked for truncation); bad files are
skipped, counted and named in a :class:`SkipReport`. Files that pass the scan but still
fail to decode are dropped at run time by ``tf.data.Dataset.ignore_errors`` and counted
in the same report. A source with no usable image raises :class:`BadInputError`.
"""

from __future__ import annotations

import os
import struct
import threading
import warnings
from dataclasses import dataclass, field

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
DEFAULT_MAX_PIXELS = 64_000_000  # ~ 8000 x 8000
DEFAULT_MIN_SIDE = 2
# (PIL format, mode) that TensorFlow's own decoders read correctly; anything else that
# PIL can open goes through the (slower) PIL fallback decoder.
TF_DECODABLE = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B", "I"},
    "GIF": None,  # any mode; the first frame is used
    "BMP": {"L", "P", "RGB", "RGBA"},
    # TF's WebP decoder fails on files with alpha: those go through PIL.
    "WEBP": {"RGB"},
    # Camera JPEGs with a multi-picture segment: a JPEG whose first picture TF decodes.
    "MPO": {"L", "RGB", "CMYK"},
}


class BadInputError(ValueError):
    """A data source is empty or holds no usable image; raised before training starts."""

    def __init__(self, message: str, path: str | None = None, report: SkipReport | None = None):
        super().__init__(message)
        self.path = path
        self.report = report


@dataclass
class SkipReport:
    """Files skipped by the pre-scan (with reasons) and elements dropped at run time.

    The pipeline tags every raw element with its stream position and keeps the stream's
    order (``options.deterministic``), so an element noted as attempted and not decoded
    is a failure exactly when a later element of the same stream has decoded; elements
    still in flight when training stops are never counted.
    """

    source: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    _pending: dict[int, dict[int, str]] = field(default_factory=dict)  # stream -> tag -> key
    _failed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, path: str, reason: str) -> None:
        with self._lock:
            self.skipped.append((path, reason))

    def note_attempts(self, stream, tags, keys) -> bool:
        """Raw elements of ``stream`` (their position tags and keys) about to be decoded."""
        with self._lock:
            pending = self._pending.setdefault(int(stream), {})
            for tag, key in zip(tags.tolist(), keys):
                pending[tag] = key.decode("utf-8", "replace")
        return True

    def note_decodes(self, stream, tags) -> bool:
        """Tags of ``stream`` whose images decoded, in stream order."""
        with self._lock:
            pending = self._pending.setdefault(int(stream), {})
            for tag in tags.tolist():
                pending.pop(tag, None)
            if len(tags):
                last = int(tags[-1])
                for tag in [t for t in pending if t < last]:
                    self._failed.add(pending.pop(tag))
        return True

    def end_stream(self, stream) -> None:
        """A finite stream is exhausted: what it attempted and never decoded failed."""
        with self._lock:
            self._failed.update(self._pending.pop(int(stream), {}).values())

    @property
    def runtime_failures(self) -> list[str]:
        """Keys (paths / record ids) whose decode failed at run time."""
        with self._lock:
            return sorted(self._failed)

    @property
    def count(self) -> int:
        """Total number of skipped inputs (pre-scan + run time)."""
        return len(self.skipped) + len(self.runtime_failures)

    def listing(self) -> str:
        """Every skipped input, one per line with its reason (what skipped.txt holds)."""
        lines = [self.summary(n=0).split(":", 1)[0] + f": {self.count} input(s) skipped"]
        lines += self.first(n=None)
        return "\n".join(lines)

    def first(self, n: int | None = 5) -> list[str]:
        items = [f"{p} ({r})" for p, r in self.skipped] + [
            f"{k} (decode failed)" for k in self.runtime_failures
        ]
        return items if n is None else items[:n]

    def summary(self, n: int = 5) -> str:
        if not self.count:
            return f"{self.source}: no input skipped"
        more = f", ... ({self.count - n} more)" if self.count > n else ""
        return f"{self.source}: skipped {self.count} input(s): " + "; ".join(self.first(n)) + more


def _truncated(path: str, fmt: str, size: int) -> bool:
    """Cheap end-of-file checks for the formats whose decoders fail on truncation."""
    with open(path, "rb") as f:
        if fmt == "WEBP":
            f.seek(4)
            return struct.unpack("<I", f.read(4))[0] + 8 > size
        f.seek(max(0, size - 1024))
        tail = f.read().rstrip(b"\x00")  # some writers pad with zeros
    if fmt in ("JPEG", "MPO"):
        return b"\xff\xd9" not in tail
    if fmt == "PNG":
        return b"IEND" not in tail[-64:]
    if fmt == "GIF":
        return not tail.endswith(b"\x3b")
    return False


def scan_image_file(
    path: str, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE
) -> tuple[str, str]:
    """Classify one file without decoding its pixels.

    Returns ("tf", "") when TensorFlow decodes it, ("pil", "") when only the PIL fallback
    does (e.g. 1-bit BMP), or ("skip", reason).
    """
    from PIL import Image

    try:
        size = os.path.getsize(path)
    except OSError as error:
        return "skip", f"unreadable: {error.strerror}"
    if size == 0:
        return "skip", "empty file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, mode, (width, height) = im.format, im.mode, im.size
                if fmt == "BMP":  # small and rare: a full decode is the reliable check
                    im.load()
    except Image.DecompressionBombError:
        return "skip", "too many pixels"
    except Exception as error:  # noqa: BLE001 - PIL raises many types on bad files
        return "skip", f"not a readable image ({type(error).__name__})"
    if fmt not in TF_DECODABLE:
        return "skip", f"unsupported format {fmt}"
    if width * height > max_pixels:
        return "skip", f"too many pixels ({width}x{height} > {max_pixels})"
    if min(width, height) < min_side:
        return "skip", f"too small ({width}x{height})"
    if _truncated(path, fmt, size):
        return "skip", "truncated"
    modes = TF_DECODABLE[fmt]
    return ("tf" if modes is None or mode in modes else "pil"), ""
