#!/usr/bin/env bash
# The whole GPU check in one command: the environment, the CUDA checks, the tests that failed on
# the first GPU run, the search and training benchmarks on the device, then the rest of the suite.
# Every part runs under `timeout`, and all of them together within GPU_CHECK_BUDGET seconds (450 by
# default: under 8 minutes), so one hang cannot eat a short GPU loan. Text logs, one per part, plus
# summary.txt go to $OUT when it is set (the GPU machine's result folder), else to out/gpu-check/.
#
#   bash benchmarks/gpu_check.sh                      # make bench-gpu; on the GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --quick # a tiny subset on the CPU: a smoke test of this script
#
# Options (or environment): --device cuda|cpu (GPU_CHECK_DEVICE, default cuda), --quick (GPU_CHECK_QUICK=1).
# PYTHON picks the interpreter (default: the first of .venv/bin/python, python3, python with torch). The project
# is installed into it (`pip install --no-deps --no-build-isolation -e .`: no network needed) unless it already
# is; without gradio, the app's test files skip themselves, and so do dlib's.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
DEVICE=${GPU_CHECK_DEVICE:-cuda}
QUICK=${GPU_CHECK_QUICK:-0}
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=$2; shift 2 ;;
    --device=*) DEVICE=${1#--device=}; shift ;;
    --quick) QUICK=1; shift ;;
    *) echo "usage: $0 [--device cuda|cpu] [--quick]" >&2; exit 2 ;;
  esac
done
if [ -z "${PYTHON:-}" ]; then  # the first interpreter that has torch
  for candidate in "$ROOT/.venv/bin/python" python3 python; do
    if "$candidate" -c "import torch" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
  PYTHON=${PYTHON:-python3}
fi
LOGS=${OUT:-$ROOT/out/gpu-check}
mkdir -p "$LOGS"
SUMMARY=$LOGS/summary.txt
BUDGET=${GPU_CHECK_BUDGET:-450}
export PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False
if ! "$PYTHON" -c "import inpaint_training" >/dev/null 2>&1; then  # training/ installs as inpaint_training
  "$PYTHON" -m pip install --no-deps --no-build-isolation -q -e "$ROOT" >"$LOGS/install.log" 2>&1 \
    || { echo "installing the project failed: see $LOGS/install.log" >&2; exit 2; }
fi
STARTED=$SECONDS
: >"$SUMMARY"
echo "gpu check: device $DEVICE, quick $QUICK, python $PYTHON, logs in $LOGS, budget ${BUDGET}s" | tee -a "$SUMMARY"

# run_part NAME LIMIT COMMAND...: run COMMAND with its output in NAME.log, for at most LIMIT seconds and
# never past the budget; one line per part in summary.txt.
run_part() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - (SECONDS - STARTED)))
  local log=$LOGS/$name.log
  if [ "$left" -lt 10 ]; then
    printf '%-16s %-14s %5s  %s\n' "$name" "not run" "-" "(budget spent)" | tee -a "$SUMMARY"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "\$ $* (limit ${limit}s)" >"$log"
  local start=$SECONDS
  timeout -k 10 "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  local status="ok"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status="TIMED OUT"; elif [ $rc -ne 0 ]; then status="FAILED ($rc)"; fi
  printf '%-16s %-14s %4ds  %s\n' "$name" "$status" $((SECONDS - start)) "$log" | tee -a "$SUMMARY"
}

ENVIRONMENT='
import importlib.util, os, platform, subprocess, sys
import torch
print("python", sys.version.split()[0], platform.platform())
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
print("CUDA available:", torch.cuda.is_available(), "| devices:", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor},",
          f"{p.multi_processor_count} SMs, bf16 {torch.cuda.is_bf16_supported()}")
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
           platform.processor())
print("CPU:", cpu, "|", os.cpu_count(), "cores | torch threads", torch.get_num_threads(),
      "| mkldnn bf16", torch.ops.mkldnn._is_mkldnn_bf16_supported())
from inpaint.device import search_precision
print("search precision auto: cpu", search_precision(torch.device("cpu")),
      "| cuda", search_precision(torch.device("cuda")) if torch.cuda.is_available() else "-")
print("distributed: gloo", torch.distributed.is_gloo_available(), "| nccl", torch.distributed.is_nccl_available())
for name in ("cv2", "gradio", "gradio_client", "dlib", "face_recognition_models", "pytest", "playwright", "skimage"):
    found = importlib.util.find_spec(name) is not None
    version = getattr(__import__(name), "__version__", "") if found and name in ("cv2", "pytest") else ""
    status = (version or "present") if found else "MISSING"
    print(f"  {name}: {status}")
import inpaint_training.loop  # sets the cuBLAS workspace for deterministic training
print("CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
try:
    print(subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout)
except (OSError, subprocess.SubprocessError) as error:
    print("nvidia-smi:", error)
'

# Test files that import gradio (or the app's modules that do) at the top cannot even be collected
# without it, and one collection error stops the whole run: leave them out.
IGNORES=()
if ! "$PYTHON" -c "import gradio, gradio_client" >/dev/null 2>&1; then
  for file in $(grep -l -E '^(from|import) (gradio|gradio_client|inpaint_ui\.(app|tour|checks|scratch))\b' tests/test_*.py); do
    IGNORES+=("--ignore=$file")
  done
  echo "no gradio: leaving out ${IGNORES[*]}" | tee -a "$SUMMARY"
fi

# The three tests that failed on the first GPU run (an H200), run on their own first.
KNOWN=(
  "tests/test_editor.py::test_projection_finds_a_latent_that_reproduces_a_generated_face"
  "tests/test_train.py::test_resume_continues_exactly_where_it_stopped"
  "tests/test_train.py::test_torchrun_two_processes_train_the_same_weights"
)
DESELECT=()
for test in "${KNOWN[@]}"; do DESELECT+=("--deselect=$test"); done
PYTEST=("$PYTHON" -m pytest -p no:cacheprovider -ra)

printf '%s' "$ENVIRONMENT" >"$LOGS/environment.py"
run_part environment 60 "$PYTHON" "$LOGS/environment.py"
if [ "$QUICK" = 1 ]; then
  run_part cuda-tests 120 "${PYTEST[@]}" -q -m cuda ${IGNORES[@]+"${IGNORES[@]}"}
  run_part known-failures 120 "${PYTEST[@]}" -v "${KNOWN[1]}"
  run_part search-speed 120 "$PYTHON" benchmarks/search_speed.py --device "$DEVICE" --batches 1 2 --iterations 2 \
    --faces 0
  run_part adapt-speed 120 "$PYTHON" benchmarks/adapt_speed.py --device "$DEVICE" --batches 1 2 --steps 2 --photos 0
  run_part train-speed 120 "$PYTHON" benchmarks/train_speed.py --device "$DEVICE" --batch-size 8 16 --image-size 32 \
    --steps 2 --warmup 1 --images 64
  run_part suite 120 "${PYTEST[@]}" -v -m "not browser and not cuda" tests/test_cuda.py tests/test_models.py
else
  run_part cuda-tests 120 "${PYTEST[@]}" -v -m cuda ${IGNORES[@]+"${IGNORES[@]}"}
  run_part known-failures 150 "${PYTEST[@]}" -v "${KNOWN[@]}"
  run_part search-speed 90 "$PYTHON" benchmarks/search_speed.py --device "$DEVICE" \
    --batches 1 16 64 256 1024 4096 --iterations 20 --faces 1024
  run_part adapt-speed 60 "$PYTHON" benchmarks/adapt_speed.py --device "$DEVICE" --batches 1 16 64 256 --steps 10
  run_part train-speed 100 "$PYTHON" benchmarks/train_speed.py --device "$DEVICE" --batch-size 64 256 1024 --steps 30
  if [ "$DEVICE" != cpu ]; then  # what the deterministic kernels cost the trainer, and what compiling gains
    run_part train-speed-fast 30 env INPAINT_CUDA_DETERMINISTIC=0 "$PYTHON" benchmarks/train_speed.py \
      --device "$DEVICE" --batch-size 64 --steps 30
    run_part train-speed-graphs 90 env INPAINT_CUDA_DETERMINISTIC=0 "$PYTHON" benchmarks/train_speed.py \
      --device "$DEVICE" --batch-size 64 --steps 30 --warmup 15 --compile reduce-overhead
  fi
  # -v: a line per test as it ends, so a timed-out run still shows what passed and what failed.
  run_part suite 400 "${PYTEST[@]}" -v --durations=15 -m "not browser and not cuda" ${IGNORES[@]+"${IGNORES[@]}"} \
    "${DESELECT[@]}"
fi

# What the run's output should show: the summary, the tests' verdicts and the benchmark tables.
echo
echo "== summary ($((SECONDS - STARTED))s in all; logs in $LOGS)"
cat "$SUMMARY"
for part in cuda-tests known-failures suite; do
  [ -f "$LOGS/$part.log" ] || continue
  echo "-- $part ($(grep -c '^SKIPPED' "$LOGS/$part.log") skip lines in the log)"
  # Failures as the short summary names them, or, after a timeout, as -v printed them.
  grep -E '^(FAILED|ERROR) | (FAILED|ERROR) +\[' "$LOGS/$part.log" | head -n 40
  grep -E '^(XPASS|SKIPPED) ' "$LOGS/$part.log" | head -n 12
  grep -E '^=+ .*(passed|failed|error|skipped|deselected).* =+$' "$LOGS/$part.log" | tail -n 1
done
for part in environment search-speed adapt-speed train-speed train-speed-fast train-speed-graphs; do
  [ -f "$LOGS/$part.log" ] || continue
  echo "-- $part"
  tr '\r' '\n' <"$LOGS/$part.log" | grep -v -E '%\||^\s*$' | tail -n 30  # no progress bars
done
! grep -q -E 'TIMED OUT|FAILED' "$SUMMARY"
