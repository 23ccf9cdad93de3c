#!/bin/sh
# A command run as on an AVX2-only Zen 3 (no AVX-512, no VNNI), on whatever x86 CPU this
# is: QEMU's user-mode emulation of the EPYC-Milan model. For correctness figures only
# (which kernels run, what they compute): emulated time means nothing.
# Usage: sh tools/emulated_zen3.sh ARGS...   runs `python ARGS...` of the project's venv, e.g.
#   sh tools/emulated_zen3.sh -m vggnet.bench.agreement runs/demo/train/best.ckpt fashion-mnist
command -v qemu-x86_64 > /dev/null || {
  echo "tools/emulated_zen3.sh: needs QEMU's user mode: apt-get install -y qemu-user" >&2
  exit 2
}
PY=${PYTHON:-.venv/bin/python}
# QEMU lists each EPYC-Milan feature it cannot emulate (none is an instruction set the
# kernels use); those lines are dropped, and the command's exit status kept.
status=$({ { qemu-x86_64 -cpu EPYC-Milan "$PY" "$@" 2>&1; echo $? >&3; } |
  grep -v "TCG doesn't support requested feature" >&4; } 3>&1) 4>&1
exit "$status"
