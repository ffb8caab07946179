"""benchmarks/matmul_forms.py: every form of a product computes the same product."""

from __future__ import annotations

import numpy as np

from benchmarks.matmul_forms import forms


def test_forms_of_each_product_agree():
    results = {
        form: function(*operands).numpy()
        for form, (function, operands) in forms(37, 12, 20).items()
    }
    for product, shape in (
        ("forward", (37, 20)),
        ("input gradient", (37, 12)),
        ("weight gradient", (12, 20)),
    ):
        values = [value for form, value in results.items() if form.startswith(product)]
        assert len(values) == 2 and values[0].shape == shape
        np.testing.assert_allclose(values[0], values[1], rtol=1e-5, atol=1e-4)
