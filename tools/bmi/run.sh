#!/usr/bin/env bash
# The BMI benchmark end to end (`make bench-bmi`): BMI's environment, the samples, BMI's neural estimators and
# misrep's estimate_mi on the same samples (task by task, so both sides run under the same load), then the table and
# the figure. Resumable: finished (task, seed, estimator) rows are kept.
#   BMI_SEEDS  seeds of the reported samples (default "0")
#   BMI_DIR    samples and raw estimates (default runs/bmi)      BMI_OUT  table and figure (default results/bmi)
#   BMI_BOUNDS estimate_mi's bounds to run (default: all seven; "infonce" is its default bound)
set -euo pipefail
DIR="${BMI_DIR:-runs/bmi}"; OUT="${BMI_OUT:-results/bmi}"; SEEDS="${BMI_SEEDS:-0}"; BOUNDS="${BMI_BOUNDS:-}"
tools/bmi/setup_venv.sh .venv-bmi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
.venv-bmi/bin/python tools/bmi/bmi_side.py samples --dir "$DIR" --seeds $SEEDS
TASKS=$(.venv/bin/python -c "import json,sys; print(' '.join(dict.fromkeys(r['task_id'] for r in json.load(open(sys.argv[1])))))" "$DIR/samples/index.json")
for t in $TASKS; do
  .venv-bmi/bin/python tools/bmi/bmi_side.py estimate --dir "$DIR" --seeds $SEEDS --tasks "$t"
  .venv/bin/python tools/bmi/misrep_side.py --dir "$DIR" --seeds $SEEDS --tasks "$t" ${BOUNDS:+--bounds $BOUNDS}
done
.venv/bin/python tools/bmi/report.py --dir "$DIR" --out "$OUT"
