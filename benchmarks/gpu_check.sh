#!/usr/bin/env bash
# One prepared check for a lent NVIDIA GPU machine (no network there): export three students and time them under
# eager PyTorch (CUDA fp32 / fp16 autocast, CPU) and onnxruntime (every provider the installed build offers) at
# batch 1, 8, 32. Writes "$OUT/gpu_bench.json" and "$OUT/gpu_bench.md". Under 4 minutes on an H100.
#
# Run from the repository root with the machine's python3 (not .venv):  bash benchmarks/gpu_check.sh
# Wheels missing there (e.g. onnxruntime-gpu) can be carried in an ignored .whl/ folder; they are installed with
# --no-index into /tmp/site and put on PYTHONPATH ahead of the repository.
set -euo pipefail

OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
python3 -c "import torch, onnxruntime as ort; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
'| onnxruntime', ort.__version__, ort.get_available_providers())"

python3 benchmarks/gpu_check.py --out "$OUT" "$@"
