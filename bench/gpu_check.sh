#!/usr/bin/env bash
# One GPU check for the whole toolkit, under 8 minutes on one GPU. Prints a PASS/FAIL/SKIP line per check and
# writes them, with every step's log and figures, to $OUT (when set) or bench/results/gpu_check-<time>/.
#
#   bash bench/gpu_check.sh                 # on a GPU machine
#   bash bench/gpu_check.sh --cpu-dry-run   # the same steps on the CPU, tiny, to test this script
#
# Checks: the torch TV-L1 bench (batch 1/8/32/128 at 171x128 and 340x256) and its CUDA-vs-CPU test; a store
# made with --flow-impl torch --flow-device cuda through the flow server (--jobs 4), verified and compared with
# the CPU's; CoCon training steps with AMP vs fp32 on CUDA with the slot
# loader's workers feeding the GPU; train.cocon and train.finetune under torchrun --nproc_per_node 1 (NCCL,
# SyncBatchNorm); pose/seg with --model-device cuda (mediapipe; mm models only when their files are given in
# MM_POSE_CONFIG, MM_POSE_CHECKPOINT, MM_SEG_CONFIG, MM_SEG_CHECKPOINT).
set -u
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--cpu-dry-run" ] && DRY=1
PY=${PYTHON:-python}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
RES=${OUT:-bench/results/gpu_check-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$RES"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SUMMARY=$RES/results.txt
: > "$SUMMARY"

if [ $DRY = 1 ]; then  # tiny, and patient: a shared CPU machine is slow
  DEV=cpu; FLOWDEV=cpu; TVL1="--tvl1 nscales=3,warps=2,inner_iterations=10,outer_iterations=2"
  BENCH="--sizes 171x128 --cpu-pairs 1 --repeats 1"; FRAMES=40; PER_CLASS=2; BATCH=2; SLOW=5
  CPUJOBS=2; MATCH="--max-mean-epd 0 --min-identical 1"   # the same device both ways: the same bytes
else
  DEV=cuda; FLOWDEV=cuda; TVL1=""
  BENCH="--gpu-only --opencv-rate ${OPENCV_RATE:-3.2} --batches 1,8,32,128 --gpu-batches 1 --repeats 1"
  FRAMES=64; PER_CLASS=4; BATCH=3; SLOW=1
  CPUJOBS=$(( $(nproc) > 12 ? 12 : $(nproc) )); MATCH="--max-mean-epd 0.02 --min-identical 0.95"
fi

report() {  # report NAME STATUS DETAIL
  printf '%-28s %-4s %s\n' "$1" "$2" "$3" | tee -a "$SUMMARY"
}

step() {  # step NAME TIMEOUT_S COMMAND...: run, log, PASS on exit 0
  local name=$1 limit=$(( $2 * SLOW )); shift 2
  local start=$(date +%s)
  timeout "$limit" "$@" > "$RES/$name.log" 2>&1
  local rc=$? took=$(( $(date +%s) - start ))
  if [ $rc = 0 ]; then report "$name" PASS "${took}s"; else report "$name" FAIL "exit $rc after ${took}s, see $RES/$name.log"; fi
  return $rc
}

{
  echo "date: $(date -u +%FT%TZ)  dry-run: $DRY"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
} > "$RES/environment.txt" 2>&1
cat "$RES/environment.txt"
if [ $DRY = 0 ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  report environment FAIL "no CUDA device visible to torch (use --cpu-dry-run on a CPU machine)"; exit 1
fi

# 1. the torch TV-L1: speed, and CUDA == CPU of the same code (the test is skipped without CUDA)
step flow_bench 240 $PY bench/bench_flow.py $BENCH --out "$RES/bench_flow.json" && tail -n 20 "$RES/flow_bench.log"
step flow_cuda_test 120 $PY -m pytest -q -s tests/test_flow_torch_tvl1.py -k "cuda or one_iteration"

# 2. a store made by the pipeline, 4 decode workers feeding one flow server on the device; it verifies, and its
#    flow agrees with the same code's on the CPU (each worker computing its own videos) within the CUDA test's
#    tolerance (on the CPU dry run: identical)
$PY -m preprocess sample "$WORK/videos" --frames $FRAMES --per-class $PER_CLASS > /dev/null 2>&1
step store_flow_on_device 240 $PY -m preprocess run --videos "$WORK/videos" --out "$WORK/store" --no-progress \
  --views rgb,flow_tvl1 --flow-impl torch --flow-device $FLOWDEV --flow-server on --flow-batch 32 --jobs 4 $TVL1 \
  && grep "flow server on" "$RES/store_flow_on_device.log"
step store_verifies 60 $PY -m preprocess verify "$WORK/store" --deep
step store_flow_cpu 300 $PY -m preprocess run --videos "$WORK/videos" --out "$WORK/store_cpu" --no-progress \
  --views rgb,flow_tvl1 --flow-impl torch --flow-device cpu --flow-server off --jobs $CPUJOBS $TVL1
step store_matches_cpu 60 $PY bench/gpu_check_stores.py "$WORK/store" "$WORK/store_cpu" --view flow_tvl1 $MATCH \
  && cat "$RES/store_matches_cpu.log"

# 3. CoCon steps with AMP and in fp32, the slot loader's workers feeding the device
CFG=configs/cocon_r18w0.125-64_1x3_3+3e_sample-rgb-flow.yaml
TINY=(data.root="$WORK/store" "data.views=[rgb, flow_tvl1]" model.width=0.125 "model.sizes={rgb: 32, flow_tvl1: 32}"
      data.num_blocks=4 data.block_frames=3 model.pred_steps=2 data.batch_size=$BATCH data.repeats=1 progress=false
      schedule.cpc_epochs=1 schedule.cocon_epochs=1 seed=0 device=$DEV)
step cocon_amp_workers 240 $PY -m train.cocon --config $CFG "${TINY[@]}" out="$WORK/amp" optim.amp=true data.workers=2
step cocon_fp32 240 $PY -m train.cocon --config $CFG "${TINY[@]}" out="$WORK/fp32" optim.amp=false data.workers=2
step amp_matches_fp32 30 $PY bench/gpu_check_losses.py "$WORK/amp/sample" "$WORK/fp32/sample" --rtol 0.05

# 4. torchrun, one process per GPU (NCCL on CUDA, gloo on the CPU), SyncBatchNorm under DDP
TORCHRUN=($PY -m torch.distributed.run --standalone --nproc_per_node 1)
step torchrun_cocon 240 "${TORCHRUN[@]}" -m train.cocon --config $CFG "${TINY[@]}" out="$WORK/ddp" data.workers=2
step torchrun_finetune 240 "${TORCHRUN[@]}" -m train.finetune --config configs/finetune_r18w0.125-64_sample-rgb-flow.yaml \
  data.root="$WORK/store" "data.views=[rgb, flow_tvl1]" "model.sizes={rgb: 32, flow_tvl1: 32}" data.num_blocks=4 \
  data.block_frames=3 data.batch_size=$BATCH data.repeats=1 data.workers=2 progress=false epochs=1 \
  model.init="$WORK/ddp/sample/cocon/checkpoint.pth" model.precise_bn_batches=2 device=$DEV out="$WORK/ft"

# 5. pose and segmentation with --model-device (mediapipe runs on the CPU whatever the device)
step pose_seg_mediapipe 240 $PY -m preprocess run --videos "$WORK/videos" --out "$WORK/poseseg" --no-progress \
  --views pose,seg --model-device $DEV --jobs 2
if [ -n "${MM_POSE_CONFIG:-}" ] && [ -n "${MM_SEG_CONFIG:-}" ]; then
  step pose_seg_mm 240 $PY -m preprocess run --videos "$WORK/videos" --out "$WORK/mm" --no-progress --views pose,seg \
    --pose-backend mmpose --pose-config "$MM_POSE_CONFIG" --pose-checkpoint "$MM_POSE_CHECKPOINT" \
    --seg-backend mmseg --seg-config "$MM_SEG_CONFIG" --seg-checkpoint "$MM_SEG_CHECKPOINT" --model-device $DEV --jobs 1
else
  report pose_seg_mm SKIP "no mm model files (set MM_POSE_CONFIG, MM_POSE_CHECKPOINT, MM_SEG_CONFIG, MM_SEG_CHECKPOINT)"
fi

echo "results: $SUMMARY"
! grep -q " FAIL " "$SUMMARY"
