#!/usr/bin/env bash
# The CUDA checks in one go, for a machine with a GPU: the environment report, the CUDA tests
# (tests/engine/test_cuda.py, skipped elsewhere), the benchmark on the card, then the whole suite.
#   benchmarks/gpu_check.sh [OUTDIR]      (results in OUTDIR, default ./gpu-check)
# Run it from the repository root with a Python that has torch with CUDA and the project installed
# (or on PYTHONPATH). Each step has its own time limit so one slow step cannot hide the others.
set -u
out="${1:-${OUT:-gpu-check}}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
step() { echo "== $1 ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
"$py" -c "import sys, torch, torchvision, textual; print(sys.version.split()[0], torch.__version__, torchvision.__version__, textual.__version__, torch.cuda.is_available())"

step "trainconsole env"
"$py" -m engine env 2>&1 | tee "$out/env.txt"

step "CUDA tests"
timeout "${CUDA_TIMEOUT:-240}" "$py" -m pytest -q -s -p no:cacheprovider tests/engine/test_cuda.py 2>&1 | tee "$out/cuda-tests.txt"

step "benchmark on the GPU"
timeout "${BENCH_TIMEOUT:-300}" "$py" benchmarks/run.py --reps "${BENCH_REPS:-1}" > "$out/bench.md" 2> "$out/bench-progress.txt"
tail -n 45 "$out/bench.md"

step "the whole suite"
timeout "${SUITE_TIMEOUT:-150}" "$py" -m pytest -q -p no:cacheprovider ${SUITE_ARGS:-} tests 2>&1 | tail -n 40 | tee "$out/suite.txt"
step "done"
