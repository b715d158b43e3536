#!/usr/bin/env bash
# The CUDA checks of issue 10, as one script for a lent GPU machine (see the device tool's README):
# every family trains on CUDA with the default speed plan (bf16 autocast, channels-last, fused
# Adam, input cache), its step time against fp32 eager, bf16's cost in PSNR per epoch, compile,
# an encode on the GPU decoded on the GPU and on the CPU, and the core tests with CUDA present.
#
#   bash bench/gpu_check.sh OUT_DIR [FRAMES_DIR]
#
# FRAMES_DIR is Bunny 320x180x32 as PNG frames (the GPU machine may have no ffmpeg: the wheel's
# binary is too large to carry). Each section has its own time limit and its own log, so one
# failure costs only that section. GPU_SMOKE=1 runs every section at toy size on this machine's
# CPU: the script itself is tested before device time is spent on it.
set -u
OUT=${1:?OUT_DIR}
FRAMES=${2:-.gpu/bunny}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python3}
if [ "${GPU_SMOKE:-0}" = 1 ]; then
  DEV=cpu; STEPS=2; ROUNDS=1; EPOCHS=2; EVAL=1; FIT=20; ENC=6; ESTEPS=10; PARAMS_BIG=0.15M; TESTS=tests/test_hashgrid_backend.py; XDIST=
else
  DEV=cuda; STEPS=20; ROUNDS=5; EPOCHS=60; EVAL=30; FIT=3000; ENC=40; ESTEPS=1500; PARAMS_BIG=3M; TESTS=; XDIST='-n 8'
fi
INR="$PY -m ui.cli"
# The lent machine's RAM grows as it is used, so the free-memory reading that sizes a default
# encode starts far too low there (an H200 run refused 320x180 with a 0.4 GiB budget): name one.
MEM="--memory-gb ${MEM_GB:-16}"

DEADLINE=$(( $(date +%s) + ${BUDGET_S:-480} ))  # the whole script's device time; sections in order of worth
section() {  # section NAME LIMIT_S COMMAND...: run with a limit, log to OUT/NAME.log, never abort the script
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  local left=$(( DEADLINE - t0 ))
  if [ "$left" -lt 15 ]; then echo "=== $name skipped: budget spent"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name ($(date -u +%T))"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "=== $name rc=$rc in $(( $(date +%s) - t0 )) s"
  tail -n 25 "$OUT/$name.log"
}

section env 30 bash -c "nvidia-smi -L; $PY -c 'import torch,sys; print(sys.version); print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"\")'; $PY -c 'import tinycudann' 2>&1 | tail -1; nproc"

# Step time per family: defaults vs fp32 eager, each knob alone; the 0.15M and a GPU-sized
# 3M for the conv families (the hash grid cannot grow to 3M on a 256x256 image).
section speed_015M 150 $PY bench/bench_speed.py --device $DEV --models siren,poly,ffn,hashgrid,shacira,nerv,nervpp,hnerv,grid \
  --steps $STEPS --rounds $ROUNDS --ablate --video "$FRAMES" --name gpu_speed_015M
# bf16's cost per epoch on CUDA: the defaults (fp32 there) against the same with bf16.
section video_bf16 150 $PY bench/bench_video.py --device $DEV --video "$FRAMES" --models hnerv,nerv --variants fast:amp,fast:on \
  --seeds 0,1 --epochs $EPOCHS --eval-every $EVAL --name gpu_video_bf16
for amp in on off; do
  flag=$([ $amp = off ] && echo --no-amp || echo --amp)
  section "siren_amp_$amp" 60 $INR fit inr/assets/bunny_256.png --model siren --params 100k --steps $FIT --device $DEV $flag -o "$OUT/siren_$amp"
done

# An encode on the GPU; the file decoded on the GPU and on the CPU must give the same frames.
section encode 120 $INR encode "$FRAMES" -o "$OUT/bunny.inr" --bpp 0.2 --seconds $ENC --device $DEV $MEM
for amp in on off; do  # the grid family at equal steps, bf16 (forced: CUDA defaults to fp32) vs fp32
  flag=$([ $amp = off ] && echo --no-amp || echo --amp)
  section "encode_steps_amp_$amp" 120 $INR encode "$FRAMES" -o "$OUT/steps_$amp.inr" --bpp 0.2 --steps $ESTEPS --device $DEV $MEM $flag
done
section decode 60 bash -c "$INR info $OUT/bunny.inr && $INR decode $OUT/bunny.inr -o $OUT/dec_gpu/ --device $DEV && \
  $INR decode $OUT/bunny.inr -o $OUT/dec_cpu/ --device cpu && $PY bench/gpu_compare_frames.py $OUT/dec_gpu $OUT/dec_cpu $FRAMES"

# The core tests with CUDA present (auto picks it); ones that need ffmpeg or gradio fail here for that alone.
TESTS=${TESTS:-tests/test_speed_paths.py tests/test_encodings.py tests/test_hashgrid_backend.py tests/test_checkpoint.py \
  tests/test_fit_image.py tests/test_models.py tests/test_video_models.py tests/test_shacira.py tests/test_family_roundtrip.py tests/test_netcode.py}
section pytest 150 $PY -m pytest -q -p no:cacheprovider $XDIST $TESTS

section speed_3M 90 $PY bench/bench_speed.py --device $DEV --models nerv,nervpp,hnerv --params $PARAMS_BIG --ablate \
  --steps $STEPS --rounds $ROUNDS --video "$FRAMES" --name gpu_speed_3M
section compile 150 $PY bench/bench_speed.py --device $DEV --models nerv,hashgrid --steps $STEPS --rounds 3 --compile \
  --video "$FRAMES" --name gpu_speed_compile

cp bench/results/gpu_*.json "$OUT/" 2>/dev/null
rm -rf "$OUT/dec_gpu" "$OUT/dec_cpu" "$OUT"/siren_*/*.safetensors
echo "=== done ($(date -u +%T))"
