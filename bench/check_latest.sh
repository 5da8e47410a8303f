#!/usr/bin/env bash
# Drift check: install the NEWEST versions that pyproject.toml allows (no constraints file) into
# a throw-away virtualenv, with no pip cache, and run the README's test command there.
#
#   bash bench/check_latest.sh            # exit 0: the newest allowed set passes
#
# On failure it prints the packages that differ from constraints.txt (the tested set), which is
# where to look for the break: pin around it in pyproject.toml or fix the code, then regenerate
# constraints.txt with tools/update-constraints.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/catalens-latest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
python -m venv "$tmp/venv"
export PIP_NO_CACHE_DIR=1
"$tmp/venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! "$tmp/venv/bin/python" -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev]" >"$tmp/install.log" 2>&1; then
  tail -30 "$tmp/install.log"
  echo "check_latest: FAILED to install the newest allowed versions"
  exit 2
fi
"$tmp/venv/bin/python" -m pip freeze --exclude-editable | sort >"$tmp/latest.txt"
echo "packages newer than constraints.txt (name: tested -> latest):"
"$tmp/venv/bin/python" - "$tmp/latest.txt" <<'PY'
import re
import sys
from pathlib import Path

def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out

tested, latest = pins(Path("constraints.txt")), pins(Path(sys.argv[1]))
diff = [f"  {n}: {tested[n]} -> {v}" for n, v in sorted(latest.items()) if n in tested and tested[n] != v]
print("\n".join(diff) if diff else "  (none: the tested set is the newest)")
PY
source "$tmp/venv/bin/activate"
python -m pytest -q -p no:cacheprovider
rc=$?
if [ $rc -eq 0 ]; then echo "check_latest: PASSED with the newest allowed versions"; else echo "check_latest: FAILED (pytest exit $rc); see the version differences above"; fi
exit $rc
