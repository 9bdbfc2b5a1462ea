#!/usr/bin/env bash
# Training runs made on a GPU machine (one NVIDIA H100 GPU, 16 CPU cores), recorded for the model cards.
# Usage (from the repository root):  bash benchmarks/gpu_train.sh PHASE RESULT_DIR PHOTO_DIR...
#   phase 1: LGC-VD two-stage + one-stage ablation (integer-motion digits), BIMNet (medium),
#            PVDNet (medium) with DIS flow; all four at once, 7.5 min of wall time each.
#   phase 2: LGC-VD both models again (short-run EMA), BIMNet (medium) with the GPU correlation.
#   phase 3: PVDNet (medium) with the frozen BIMNet of phase 2 (BIMNET=folder), STEPS steps.
#   phase 4: continue the shipped pvdnet-medium on its own BIMNet flow (fine-tuning, resumable:
#            run it again to continue), STEPS steps; the next step towards a +3 dB gain over the blurry input.
# Every run is an ordinary `vidrestore train ...` command; only --device/--workers differ from
# a CPU run. Data are rendered on the CPU (workers), networks run on the GPU.
set -u
phase=$1; res=$2; shift 2
data=(); for d in "$@"; do data+=(--data "$d"); done
export PYTHONPATH=src PYTHONUNBUFFERED=1
V="python3 -m vidrestore.cli.main"
mkdir -p "$res"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$res/machine.txt" 2>&1
python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" >> "$res/machine.txt" 2>&1
nproc >> "$res/machine.txt"
MIN=${MIN:-7.5}; DEV=${DEV:-cuda}
if [ "$phase" = 1 ]; then
  $V train lgcvd --out "$res/lg2" --steps 1000000 --batch 32 --lr 3e-4 --integer-motion --ckpt-every 500 \
     --device "$DEV" --threads 1 --max-minutes "$MIN" > "$res/lg2.log" 2>&1 &
  $V train lgcvd --out "$res/lg1" --one-stage --steps 1000000 --batch 32 --lr 3e-4 --integer-motion --ckpt-every 500 \
     --snapshot-every 250 --device "$DEV" --threads 1 --max-minutes "$MIN" > "$res/lg1.log" 2>&1 &
  $V train bimnet "${data[@]}" --out "$res/bim" --preset medium --steps ${BIM_STEPS:-4000} --batch 8 --size 96 \
     --flow-weight 0.1 --ckpt-every 500 --device "$DEV" --workers 5 --threads 1 --max-minutes "$MIN" > "$res/bim.log" 2>&1 &
  $V train pvdnet "${data[@]}" --out "$res/pvd_dis" --flow dis --preset medium --steps ${PVD_STEPS:-7000} --batch 8 \
     --size 96 --frames 8 --zero-init --ckpt-every 1000 --device "$DEV" --workers 7 --threads 1 --max-minutes "$MIN" \
     > "$res/pvd_dis.log" 2>&1 &
  wait
elif [ "$phase" = 2 ]; then
  # LGC-VD again with a short-run EMA (decay 0.999 every iteration from 500), BIMNet with the
  # GPU correlation (one unfold instead of 49 shifted products per level).
  $V train lgcvd --out "$res/lg2" --steps 1000000 --batch 32 --lr 3e-4 --integer-motion --ckpt-every 500 \
     --ema-start 500 --ema-decay 0.999 --ema-every 1 --device "$DEV" --threads 1 --max-minutes "$MIN" > "$res/lg2.log" 2>&1 &
  $V train lgcvd --out "$res/lg1" --one-stage --steps 1000000 --batch 32 --lr 3e-4 --integer-motion --ckpt-every 500 \
     --ema-start 500 --ema-decay 0.999 --ema-every 1 --snapshot-every 250 --device "$DEV" --threads 1 \
     --max-minutes "$MIN" > "$res/lg1.log" 2>&1 &
  $V train bimnet "${data[@]}" --out "$res/bim" --preset medium --steps ${BIM_STEPS:-4500} --batch 8 --size 96 \
     --flow-weight 0.1 --ckpt-every 500 --device "$DEV" --workers 10 --threads 1 --max-minutes "$MIN" > "$res/bim.log" 2>&1 &
  wait
elif [ "$phase" = 3 ]; then
  $V train pvdnet "${data[@]}" --out "$res/pvd_bim" --bimnet "$BIMNET" --flow bimnet --preset medium --steps "$STEPS" \
     --batch 8 --size 96 --frames 8 --zero-init --ckpt-every 1000 --device "$DEV" --workers 14 --threads 1 \
     --max-minutes "$MIN" > "$res/pvd_bim.log" 2>&1
elif [ "$phase" = 4 ]; then
  W=src/vidrestore/weights/pvdnet-medium
  resume=(); [ -f "$res/pvd_long/checkpoint/trainer_state.json" ] && resume=(--resume)
  $V train pvdnet "${data[@]}" --out "$res/pvd_long" --bimnet "$W" --init "$W" --flow bimnet --preset medium \
     --steps "${STEPS:-50000}" --lr 1e-4 --seed 2 --batch 8 --size 96 --frames 8 --ckpt-every 1000 --device "$DEV" \
     --workers 14 --threads 1 --max-minutes "$MIN" "${resume[@]}" >> "$res/pvd_long.log" 2>&1
fi
