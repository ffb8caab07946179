# ruff: noqa: E501
"""benchmarks/hlo_profile.py reads XLA's HLO dump: shapes, dot FLOPs, kinds of operation."""

from __future__ import annotations

from benchmarks.hlo_profile import dot_flops, kind_of, read_hlo

# HLO lines as XLA writes them (long).
HLO = """
ENTRY %main (arg0.1: f32[64,192], arg1.1: f32[768,192]) -> f32[64,768] {
  %arg0.1 = f32[64,192]{1,0} parameter(0)
  %arg1.1 = f32[768,192]{1,0} parameter(1)
  %q.1 = f32[32,3,275,64]{3,2,1,0} parameter(2)
  %MatMul.7 = f32[64,768]{1,0} dot(%arg0.1, %arg1.1), lhs_contracting_dims={1}, rhs_contracting_dims={1}
  %dot.2 = f32[32,3,275,275]{3,2,1,0} dot(%q.1, %q.1), lhs_batch_dims={0,1}, lhs_contracting_dims={3}, rhs_batch_dims={0,1}, rhs_contracting_dims={3}
  ROOT %wrapped_reduce-window.3 = f32[64,6]{1,0} fusion(%arg0.1), kind=kLoop, calls=%c
}
"""


def test_reads_shapes_and_counts_dot_flops(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text(HLO)
    hlo = read_hlo(str(path))
    assert hlo["MatMul.7"][:2] == ((64, 768), "dot")
    assert dot_flops(hlo, "MatMul.7") == 2 * 64 * 768 * 192
    assert dot_flops(hlo, "dot.2") == 2 * 32 * 3 * 275 * 275 * 64
    assert kind_of(hlo, "MatMul.7") == "dense dots"
    assert kind_of(hlo, "dot.2") == "attention dots (batched)"
    assert kind_of(hlo, "wrapped_reduce-window.3").startswith("tree-rewritten")
    assert kind_of(hlo, "ynn_fusion.4").startswith("YNNPACK")
    assert kind_of(hlo, "multiply_add_fusion.9") == "element-wise fusions"
