#!/usr/bin/env bash
# GPU check for ganlab: DCGAN fp32 eager vs bf16 + compile + channels_last, the
# article-loop comparison, on MNIST-shaped data, and population runs (N seeds as one
# vectorised model). Prints tables with the card's name.
#
#   bash benchmarks/gpu_check.sh               # on a CUDA machine, from the repository root
#   bash benchmarks/gpu_check.sh --cpu-smoke   # anywhere: tiny sizes on the CPU, checks the script
#
# Extra arguments go to benchmarks/bench_gpu.py (e.g. --json "$OUT/gpu.json").
# Budget: about 3-5 minutes on an H100/H200 (most of it torch.compile and process start-up);
# the Python part is killed after 480 s so the whole check stays under ten minutes.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=python

echo "== ganlab GPU check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

echo "== Python packages"
"$PY" - <<'PYEOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
needed = ["torch", "torchvision", "numpy", "pluggy", "typer", "rich", "PIL"]
optional = ["mlflow", "entmax", "sklearn", "tomli_w", "matplotlib"]
missing = []
for name in needed + optional:
    try:
        module = importlib.import_module(name)
        print(f"  {name:12s} {getattr(module, '__version__', 'present')}")
    except Exception as exc:  # ImportError, or a broken install
        kind = "REQUIRED" if name in needed else "optional (not used by this check)"
        print(f"  {name:12s} MISSING, {kind}: {type(exc).__name__}: {exc}")
        if name in needed:
            missing.append(name)
if missing:
    print("cannot run the GPU check without: " + ", ".join(missing))
    sys.exit(1)
PYEOF
[ $? -eq 0 ] || exit 1

"$PY" -c "import torch; print('torch', torch.__version__, '| cuda available:', torch.cuda.is_available(), '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"

if ! "$PY" -c "import ganlab, ganlab_plugins" >/dev/null 2>&1; then
    echo "== ganlab is not importable: installing it (editable, no dependencies, no network)"
    "$PY" -m pip install -q -e . --no-deps --no-build-isolation || {
        echo "cannot install ganlab with pip; install it (pip install -e . --no-deps) and rerun"; exit 1; }
fi
"$PY" -c "from ganlab.plugins import PluginManager; r = PluginManager().load().registry; print('components:', len(list(r)))" \
    || { echo "ganlab's plugins do not load"; exit 1; }
"$PY" -m ganlab run --help >/dev/null \
    || { echo "the ganlab command line does not start (see the error above: a missing package of typer's?)"; exit 1; }

echo "== benchmark (progress on stderr, table at the end)"
export PYTHONUNBUFFERED=1
timeout 360 "$PY" benchmarks/bench_gpu.py "$@"
status=$?
[ $status -eq 124 ] && echo "bench_gpu.py ran past 360 s and was stopped"

echo "== population runs (--seeds): N replicas against N times one single run, training steps"
if [ "${1:-}" = "--cpu-smoke" ]; then
    timeout 120 "$PY" benchmarks/bench_population.py --figure step --cases ring8-small --ns 1,2 --blocks 2 --steps-per-block 3
else
    timeout 180 "$PY" benchmarks/bench_population.py --figure step --device cuda --cases ring8-article,digits-dcgan \
        --ns 1,8,16,32,64 --blocks 5 --steps-per-block 20
fi
[ $? -eq 124 ] && echo "bench_population.py ran past its time and was stopped"
exit $status
