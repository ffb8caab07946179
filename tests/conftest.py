"""Imported by pytest before any test module: siameseim_tf before TensorFlow, so that the
tests run with TensorFlow's oneDNN rewrites on as users' runs do (siameseim_tf/__init__)."""

import siameseim_tf  # noqa: F401
