#!/usr/bin/env bash
# SMAC3 for bench/search.py's `smac` peer (the `bench-smac` extra). Its pyrfr dependency ships only as source and
# its build calls the `swig` executable, which `pip install smac` does not provide: swig comes from PyPI into the
# venv first, with the venv's bin on PATH for pyrfr's build (no build isolation, so the build sees it). Best effort:
# where the build fails the smac tests skip and say why, and `make test` goes on.
set -u
BIN="${1:-.venv/bin}"
"$BIN/python" -c "import smac" >/dev/null 2>&1 && exit 0
BIN="$(cd "$BIN" && pwd)"
export PATH="$BIN:$PATH"
log="$(mktemp -t nightlab-bench-smac.XXXXXX)"
echo "building SMAC3 for bench/search.py's smac peer (pyrfr from source with swig; once per venv)"
if "$BIN/python" -m pip install -q swig wheel >"$log" 2>&1 \
  && "$BIN/python" -m pip install -q --no-build-isolation pyrfr >>"$log" 2>&1 \
  && "$BIN/python" -m pip install -q -e ".[bench-smac]" >>"$log" 2>&1; then
  rm -f "$log"
  exit 0
fi
echo "could not build SMAC3 (see $log): the smac peer's tests will skip and say so"
exit 1
