#!/usr/bin/env bash
# Build the BMI benchmark's own virtual environment (kept out of misrep's dependencies).
# BMI (benchmark-mi 0.1.3, Czyz et al. 2023) needs Python < 3.13 and numpy < 2; the jax that pip resolves today is
# too new for its tensorflow-probability 0.20, so jax/jaxlib are pinned to 0.4.30.
# Usage: tools/bmi/setup_venv.sh [VENV_DIR]   (default .venv-bmi; PYTHON_BMI picks the interpreter)
set -euo pipefail
VENV="${1:-.venv-bmi}"
PY="${PYTHON_BMI:-python3.11}"
"$PY" - <<'PYEOF'
import sys
if not ((3, 9) <= sys.version_info[:2] < (3, 13)):
    sys.exit(f"BMI needs Python >= 3.9 and < 3.13; {sys.executable} is {sys.version.split()[0]}. Set PYTHON_BMI.")
PYEOF
STAMP="$VENV/.bmi-installed"
if [ -f "$STAMP" ]; then echo "$VENV is ready"; exit 0; fi
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip wheel
"$VENV/bin/python" -m pip install "benchmark-mi==0.1.3" "jax[cpu]==0.4.30" "jaxlib==0.4.30" "numpy<2"
"$VENV/bin/python" -c "import bmi, jax; print('bmi', bmi.__version__ if hasattr(bmi, '__version__') else '0.1.3', 'jax', jax.__version__)"
touch "$STAMP"
