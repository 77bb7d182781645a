#!/bin/bash
# Training runs on a lent GPU machine (the `device` tool of this workplace; any CUDA machine
# with torch works the same way). Here, first: `python tools/device/pack_data.py [--sar-only]
# [--natural-refs runs/natural_refs]` writes the ignored folder devdata/ (the training data,
# float16 amplitude, xz-compressed; the device tool carries at most 64 MiB with the tree, so
# leave the natural images out for SAR-only runs).
# There, from the repository root, with devdata carried:
#     RUNS="dncnn-natural sarcnn-s1-l1-gain" DEADLINE=470 bash tools/device/train_runs.sh
#     RUNS="sarcnn-s1-l1-cos" THEN="sarcnn-s1-l1-cos2" DEADLINE=540 bash tools/device/train_runs.sh
# Data go where the configs expect them (../shared/data, runs/references); the runs of RUNS
# train side by side on the one GPU, then those of THEN (whose configs may start from a RUNS
# folder: "init_from": "training_runs/NAME"), each ended cleanly (SIGTERM -> checkpoint) when
# DEADLINE seconds have passed since the start of the script; their folders are tarred into
# $OUT to bring back (extract them in the repository root).
PY=${PY:-python3}
DEADLINE=${DEADLINE:-470}
START=$SECONDS
mkdir -p ../shared/data && cp -r devdata/shared/* ../shared/data/ || exit 1
$PY tools/device/rebuild_references.py || exit 1
export PYTHONPATH=$PWD/src${EXTRA_PYTHONPATH:+:$EXTRA_PYTHONPATH} OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null; $PY -c "import torch; print(torch.__version__, torch.cuda.is_available())"
RUNS=${RUNS:-"dncnn-natural dncnn-sar sarcnn-s1-l1-ft sarcnn-s1-l1-long"}

train_group() {  # the runs named in $1, side by side, until they end or the deadline
  local left=$((DEADLINE - (SECONDS - START))) pids=() r
  if [ $left -le 10 ]; then echo "no time left for: $1"; return; fi
  for r in $1; do
    timeout -s TERM $left $PY -m sardespeckle.cli.main train --run-dir training_runs/$r --threads ${THREADS:-3} -q $TRAIN_ARGS >> $OUT/$r.log 2>&1 &
    pids+=($!)
  done
  ( while sleep 60; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; for r in $1; do echo "$r $(tail -n1 training_runs/$r/log.csv 2>/dev/null)"; done; done ) &
  local mon=$!
  wait "${pids[@]}"
  kill $mon 2>/dev/null
}

train_group "$RUNS"
[ -n "$THEN" ] && train_group "$THEN"
for r in $RUNS $THEN; do tail -n 3 $OUT/$r.log; tail -n 2 training_runs/$r/log.csv; tar cf $OUT/$r.tar --exclude=checkpoint.pt training_runs/$r; done  # checkpoints stay: the device tool brings back small files only
ls -la $OUT
