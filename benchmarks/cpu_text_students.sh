#!/usr/bin/env bash
# CPU latency and int8 accuracy of the built-in example's text models (issue 3 benchmark goals).
#
#   bash benchmarks/cpu_text_students.sh            # after `make install`; reuses runs/example from `make demo`
#
# 1. `distill run --resume` (quick profile) trains the MiniLM teacher and the tiny KD student, or reuses them;
# 2. `distill export --int8` writes both to ONNX (fp32 + int8), each parity-checked; the int8 accuracy drop is
#    measured on unseen answers and reported, not enforced (--max-metric-drop 1.0), so the report shows it;
# 3. `distill eval` measures accuracy of the fp32 and int8 ONNX models on SciEntsBank unseen answers;
# 4. `distill bench` times onnxruntime (fp32, int8) against PyTorch eager at batch 1 and 32 in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUN=${RUN:-runs/example}
EXPORTS=${EXPORTS:-runs/exports}
OUT=${OUT:-docs/results/cpu_text_students}
export HF_HUB_OFFLINE=1

"$BIN/distill" run --profile quick --output-dir "$RUN" --resume  # a finished run is reused as it is
rm -rf "$EXPORTS" && mkdir -p "$EXPORTS" "$OUT"
"$BIN/distill" export "$RUN/student_kd/model" "$EXPORTS/student_kd" --int8 \
  --eval-data "$RUN/data/unseen_answers.jsonl" --max-metric-drop 1.0
"$BIN/distill" export "$RUN/teacher_model" "$EXPORTS/teacher" --int8 \
  --eval-data "$RUN/data/unseen_answers.jsonl" --max-metric-drop 1.0
for model in student_kd teacher; do
  for variant in fp32 int8; do
    "$BIN/distill" eval "$EXPORTS/$model" "$RUN/data/unseen_answers.jsonl" --variant "$variant" \
      > "$OUT/eval_${model}_${variant}.json"
  done
done
"$BIN/distill" bench "$EXPORTS/student_kd" "$EXPORTS/teacher" --batch 1 32 --providers cpu \
  --variants fp32 int8 --repeats 100 --warmup 20 --seq-len 96 --metric accuracy --out "$OUT"
