"""Embeds image files through a TF Serving REST v1 endpoint (TF Serving or `siameseim serve`).

    python serving/client.py --url http://127.0.0.1:8501 --model siameseim a.jpg b.png

Sends ``POST /v1/models/<model>:predict`` with ``{"instances": [{"b64": ...}, ...]}`` (the
SavedModel's ``serving_default`` signature: encoded JPEG / PNG bytes) and prints one JSON
line per image: file name, embedding size and L2 norm; ``--output`` saves the full
responses' embeddings as JSON. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
import urllib.error
import urllib.request


def predict(url: str, model: str, paths: list[str], timeout: float = 60.0) -> list[dict]:
    """The ``predictions`` for ``paths`` (one dict of outputs per image)."""
    instances = []
    for path in paths:
        with open(path, "rb") as handle:
            instances.append({"b64": base64.b64encode(handle.read()).decode("ascii")})
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/models/{model}:predict",
        data=json.dumps({"instances": instances}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)["predictions"]
    except urllib.error.HTTPError as error:  # 4xx / 5xx: show the server's message
        raise SystemExit(f"HTTP {error.code}: {error.read().decode(errors='replace')}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="JPEG / PNG files")
    parser.add_argument("--url", default="http://127.0.0.1:8501", help="server base URL")
    parser.add_argument("--model", default="siameseim", help="model name")
    parser.add_argument("--output", help="write {file: embedding} as JSON here")
    args = parser.parse_args(argv)
    predictions = predict(args.url, args.model, args.images)
    embeddings = {}
    for path, prediction in zip(args.images, predictions):
        embedding = prediction["embedding"]
        embeddings[path] = embedding
        norm = math.sqrt(sum(v * v for v in embedding))
        print(json.dumps({"image": path, "dim": len(embedding), "norm": round(norm, 6)}))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(embeddings, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
