#!/usr/bin/env bash
# CPU latency and int8 accuracy of the education pack's teacher-class model (the fine-tuned MiniLM-L6
# cross-encoder, exported with onnxruntime's fusions) and its tiny KD student, side by side with eager PyTorch.
#
#   bash benchmarks/cpu_text_students.sh           # after `distill run education --profile full` (RUN=... to change)
#
# 1. `distill eval` measures accuracy of the fp32 and int8 ONNX files on SciEntsBank unseen answers (the run's own
#    export: fp32 fused, int8 per-channel where it passed its 1-point accuracy gate);
# 2. `distill bench` times onnxruntime (fp32, int8) and eager PyTorch at batch 1 and 32, 2 threads each, call by
#    call in turn, at the padded length (128 tokens) and at the real token lengths of unseen answers.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUN=${RUN:-runs/education/full}
OUT=${OUT:-docs/results/cpu_text_students}
DATA="$RUN/sra/data/unseen_answers.jsonl"
export HF_HUB_OFFLINE=1

for model in sra_teacher sra_tiny_kd; do
  [ -f "$RUN/export/$model/spec.json" ] || { echo "no $RUN/export/$model: run distill run education first"; exit 1; }
done
rm -rf "$OUT" && mkdir -p "$OUT"
for model in sra_tiny_kd sra_teacher; do
  "$BIN/distill" eval "$RUN/export/$model" "$DATA" --variant fp32 > "$OUT/eval_${model}_fp32.json"
  if [ -f "$RUN/export/$model/model.int8.onnx" ]; then  # absent when int8 failed its accuracy gate
    "$BIN/distill" eval "$RUN/export/$model" "$DATA" --variant int8 > "$OUT/eval_${model}_int8.json"
  fi
done
"$BIN/distill" bench "$RUN/export/sra_tiny_kd" "$RUN/export/sra_teacher" --batch 1 32 --providers cpu \
  --variants fp32 int8 --threads 2 --repeats 100 --warmup 20 --real-data "$DATA" --metric accuracy --out "$OUT"
