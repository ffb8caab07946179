#!/usr/bin/env bash
# Every export format of one encoder: bash export/export_all.sh ENCODER.keras OUT [NAME]
set -euo pipefail
checkpoint=${1:?usage: export_all.sh ENCODER.keras OUT [NAME]}
out=${2:?usage: export_all.sh ENCODER.keras OUT [NAME]}
name=${3:-siameseim}
siameseim export --checkpoint "$checkpoint" --output "$out" --name "$name" --format both --quantize
siameseim export --checkpoint "$checkpoint" --output "$out" --name "$name" --format litert
