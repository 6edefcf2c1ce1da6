#!/usr/bin/env bash
# Install the CPU OpenMMLab stack (mmengine / mmcv-lite / mmpose / mmsegmentation / mmdet) into an
# existing virtual environment that already holds torch 2.13.0 and numpy 1.26.4.
#
#   usage: bash scripts/install_openmmlab.sh VENV        (e.g. .venv)
#
# Facts behind each step: shared/research/deps_probe.md sections 4 and 7.
#  - every pip call passes -c constraints.txt (numpy==1.26.4, setuptools<81, protobuf==4.25.8): without it
#    mmengine/scipy silently upgrade numpy to 2.x and break the numpy-1 xtcocotools wheel; mmengine 0.10.7
#    needs pkg_resources, i.e. setuptools<81.
#  - mmcv-lite 2.1.0 (no compiled ops; preprocess/mmcv_shim.py stands in for mmcv.ops). mmseg/mmdet refuse
#    mmcv 2.2.
#  - mmpose/mmseg/mmdet --no-deps: their unpinned torchvision requirement would pull a different torch plus
#    the multi-GB CUDA stack. Their runtime deps are pinned below by hand.
#  - mmengine pulls opencv-python, which shares site-packages/cv2 with opencv-contrib-python-headless:
#    remove it and force-reinstall the contrib build last, or cv2 (and cv2.optflow) break.
#
# GPU cluster recipe (comment only, not run here): mmcv 2.1.0 with CUDA ops must be built from the sdist
# (~20 min on 2 cores, longer with CUDA kernels), against the venv's torch, with setuptools<81 because the
# build needs pkg_resources:
#   pip install -c constraints.txt "setuptools<81" wheel ninja
#   MMCV_WITH_OPS=1 FORCE_CUDA=1 pip install -c constraints.txt --no-build-isolation mmcv==2.1.0
# then skip mmcv-lite below (keep everything else); preprocess/mmcv_shim.py does nothing when mmcv._ext exists.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash scripts/install_openmmlab.sh VENV" >&2
    exit 2
fi
VENV=$1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
    echo "install_openmmlab: no python at $PY (create the venv first)" >&2
    exit 2
fi
CONSTRAINTS="$ROOT/constraints.txt"
LOG=$(mktemp "${TMPDIR:-/tmp}/install_openmmlab.XXXXXX.log")
START=$(date +%s)

pip_() {
    if ! "$PY" -m pip install --disable-pip-version-check -q -c "$CONSTRAINTS" "$@" >>"$LOG" 2>&1; then
        echo "install_openmmlab: pip install $* failed; log: $LOG" >&2
        tail -n 20 "$LOG" >&2
        exit 1
    fi
}

pip_ "setuptools<81" mmengine==0.10.7 mmcv-lite==2.1.0 \
    addict==2.4.0 rich==15.0.0 termcolor==3.3.0 yapf==0.43.0 \
    markdown-it-py==4.3.0 mdurl==0.1.2 platformdirs==4.14.7
pip_ --no-deps mmpose==1.3.2 mmsegmentation==1.2.2 mmdet==3.3.0
pip_ --only-binary xtcocotools xtcocotools==1.14.3 Cython==3.3.1 \
    json_tricks==3.17.3 munkres==3.0.0 scipy==1.17.1 prettytable==3.18.0 wcwidth==0.9.4 \
    pycocotools==2.0.11 shapely==2.2.0 terminaltables==3.1.10 ftfy==6.3.1 regex==2026.11.15 six==1.17.0

if "$PY" -m pip show -q opencv-python >/dev/null 2>&1; then
    if ! "$PY" -m pip uninstall -y -q opencv-python >>"$LOG" 2>&1; then
        echo "install_openmmlab: pip uninstall opencv-python failed; log: $LOG" >&2
        exit 1
    fi
fi
pip_ --force-reinstall --no-deps opencv-contrib-python-headless==4.11.0.86

# Smoke check: the stack imports (with the mmcv.ops stand-in) and numpy / cv2 are intact.
if ! (cd "$ROOT" && "$PY" - >>"$LOG" 2>&1) <<'PYEOF'
import cv2, numpy
assert numpy.__version__ == "1.26.4", numpy.__version__
assert hasattr(cv2, "optflow"), "cv2.optflow missing"
from preprocess.mmcv_shim import install_shim
install_shim()
import mmpose.apis, mmseg.apis, mmdet.apis  # noqa: F401
import xtcocotools.coco  # noqa: F401
PYEOF
then
    echo "install_openmmlab: the installed stack does not import; log: $LOG" >&2
    tail -n 20 "$LOG" >&2
    exit 1
fi
rm -f "$LOG"
echo "OpenMMLab stack installed into $VENV in $(( $(date +%s) - START )) s"
