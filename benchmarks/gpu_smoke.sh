#!/usr/bin/env bash
# The first thing to run on a machine with a GPU (under 10 minutes on one GPU):
#   benchmarks/gpu_smoke.sh                run every check on the GPU, print a summary table
#   benchmarks/gpu_smoke.sh --dry-run      list what it would run; run the CPU stand-ins (fake GPU)
#   benchmarks/gpu_smoke.sh --fetch-wheels (here, with PyPI) put the wheels a bare GPU image lacks
#                                          into .device-wheels/ (the mpich wheel: mpiexec and libmpi)
# Checks: the GPU test cases; CPU-vs-GPU training-step equality (resnet_18/50, resnext_50;
# float64 1e-9, float32 forward 1e-4 or 3x the CPU paths' own spread); DDP with 2 ranks on one GPU through the staged and NCCL
# transports; the demo config for 50 steps and a resume; ResNet-50 224 b32 training img/s
# (PyTorch's alongside when it is importable).
# Python: $PYTHON, else the project's .venv (`make install`, `pip install -e '.[gpu]'`), else
# python3 (an image that already has CuPy, NumPy and Pillow; lucid runs from this checkout).
# Wheels in .device-wheels/ are installed first, offline. mpiexec: $MPIEXEC, else the one
# beside that Python, else the one on PATH; without one the 2-rank checks say "not run".
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=.device-wheels
if [ "${1:-}" = "--fetch-wheels" ]; then
  exec python3 -m pip download --no-deps --only-binary=:all: -d "$WHEELS" "mpich>=4.2"
fi
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
if [ $DRY = 0 ] && compgen -G "$WHEELS/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps "$WHEELS"/*.whl || exit 1
fi
BESIDE=$(dirname "$(command -v "$PY")")/mpiexec
if [ -n "${MPIEXEC:-}" ]; then :; elif [ -x "$BESIDE" ]; then MPIEXEC=$BESIDE; else MPIEXEC=$(command -v mpiexec || true); fi
OUT=$(mktemp -d)
declare -a NAMES RESULTS

step() {  # step NAME GPU_COMMAND [CPU_STAND_IN_COMMAND]
  local name=$1 cmd=$2 cpu=${3:-}
  if [ $DRY = 1 ]; then
    echo "would run: $cmd"
    if [ -n "$cpu" ]; then
      echo "  CPU stand-in: $cpu"
      if bash -c "$cpu" > "$OUT/log" 2>&1; then RESULTS+=("ok (fake GPU)"); else RESULTS+=("FAILED (fake GPU)"); tail -20 "$OUT/log"; fi
    else
      RESULTS+=("needs a GPU")
    fi
  else
    echo "== $name: $cmd"
    local t0=$SECONDS
    if bash -c "$cmd" 2>&1 | tee "$OUT/log"; then RESULTS+=("ok ($((SECONDS - t0)) s)"); else RESULTS+=("FAILED"); fi
  fi
  NAMES+=("$name")
}

[ $DRY = 1 ] || $PY -c 'import lucid; lucid._backend.cupy_module(); print("GPU ok")' || exit 1

step "GPU test cases" \
  "$PY -m pytest -q -p no:cacheprovider tests -k 'gpu and not fakegpu'" \
  "$PY -m pytest -q -p no:cacheprovider tests/test_gpu_device.py tests/test_gpu_api.py"
step "CPU vs GPU step equality" \
  "$PY benchmarks/gpu_step_equality.py" \
  "$PY benchmarks/gpu_step_equality.py --fake --models resnet_18 --size 64 --batch 8"
for t in staged nccl; do
  if [ -z "$MPIEXEC" ] && [ $DRY = 0 ]; then
    NAMES+=("2 ranks on one GPU, $t"); RESULTS+=("not run: no mpiexec (--fetch-wheels, carry $WHEELS)"); continue
  fi
  step "2 ranks on one GPU, $t" \
    "CUDA_VISIBLE_DEVICES=\${CUDA_VISIBLE_DEVICES:-0} LUCID_TEST_REAL_GPU=1 $MPIEXEC -n 2 $PY tests/dist_scripts/ddp_train.py syncbn even train $t" \
    "$PY -m pytest -q -p no:cacheprovider tests/test_gpu_dist.py -k $t"
done
RUN=$OUT/run
CPU_RUN=$OUT/cpu_run
demo() {  # demo DEVICE STEPS OUTPUT_DIR [EXTRA]
  echo "$PY -m launch.train --config configs/fashion_mnist_resnet.toml --set run.device='\"$1\"' --set data.source='\"fake\"' --set run.max_steps=$2 --set run.ckpt_interval=5 --set run.output_dir='\"$3\"' --set run.progress=false ${4:-}"
}
step "demo config, 50 steps" "$(demo gpu 50 "$RUN")" "$(demo cpu 5 "$CPU_RUN")"
step "demo config, resume to 60" "$(demo gpu 60 "$RUN" '--resume auto')" "$(demo cpu 7 "$CPU_RUN" '--resume auto')"
step "ResNet-50 224 b32 img/s" \
  "$PY benchmarks/gpu_throughput.py --model resnet_50 --batch 32 --size 224"

echo
printf '%-34s %s\n' "check" "result"
for i in "${!NAMES[@]}"; do printf '%-34s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"; done
rm -rf "$OUT"
for r in "${RESULTS[@]}"; do case $r in FAILED*) exit 1 ;; esac; done
