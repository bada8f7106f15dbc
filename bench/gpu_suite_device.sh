#!/usr/bin/env bash
# The GPU suite's device call (docs/gpu-suite.md): install the carried wheels, check that
# what the suite imports is there, run the suite under its budget, leave <= 8 files in $OUT.
# From the repository root:   bash bench/gpu_suite_device.sh
# Device tool: command "bash bench/gpu_suite_device.sh", carry [".whl", ".gpu-suite"],
# timeout_s 600 (the suite's own budget, 480 s, ends it well before).
#
# Environment (the defaults are the device machine's):
#   OUT        folder that comes back (the device tool sets it; required)
#   BUDGET_S   the suite's wall-clock budget in seconds            (480)
#   SUITE_DIR  the suite directory on the machine                  (/tmp/gpu-suite)
#   WHEELS     folder of carried wheels                            (.whl)
#   SITE       where they are installed, put on PYTHONPATH         (/tmp/site)
#   RESUME     a bundle tarball from an earlier call, to resume    (.gpu-suite/gpu-suite.tar.gz)
#   REQUIRE    modules that must import before any device time is spent (torch mup)
#   SUITE_ARGS more suite arguments, e.g. "--stages 5 6 7" or "--smoke"
set -uo pipefail
: "${OUT:?OUT must name the folder whose files come back}"
BUDGET_S=${BUDGET_S:-480}
SUITE_DIR=${SUITE_DIR:-/tmp/gpu-suite}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/site}
RESUME=${RESUME:-.gpu-suite/gpu-suite.tar.gz}
REQUIRE=${REQUIRE:-torch mup}
SUITE_ARGS=${SUITE_ARGS:-}
mkdir -p "$OUT"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl || { echo "error: installing $WHEELS/*.whl failed"; exit 3; }
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
# shellcheck disable=SC2086  # REQUIRE is a list of module names
python3 - $REQUIRE <<'PY' || exit 3
import importlib, sys
for m in sys.argv[1:]:
    try:
        importlib.import_module(m)
    except Exception as exc:
        sys.exit(f"error: python3 cannot import {m} ({type(exc).__name__}: {exc}); carry its wheel")
PY
resume=()
if [ -f "$RESUME" ]; then resume=(--resume-from "$RESUME"); fi
export PYTHONUNBUFFERED=1
# shellcheck disable=SC2086  # SUITE_ARGS is a list of words
python3 -m bench.gpu_suite --budget-s "$BUDGET_S" --out "$SUITE_DIR" --bundle "$OUT" \
    ${resume[@]+"${resume[@]}"} $SUITE_ARGS 2>&1 | tee "$OUT/suite.log"
exit "${PIPESTATUS[0]}"
