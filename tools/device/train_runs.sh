#!/bin/bash
# Training runs on a lent GPU machine (the `device` tool of this workplace; any CUDA machine
# with torch works the same way). Here, first: `python tools/device/pack_data.py` writes the
# ignored folder devdata/ (the training data, float16 amplitude: < 64 MiB with the tree).
# There, from the repository root, with devdata carried:
#     RUNS="dncnn-natural sarcnn-s1-l1-gain" DEADLINE=470 bash tools/device/train_runs.sh
# Data go where the configs expect them (../shared/data, runs/references); the runs train side
# by side on the one GPU, each ended cleanly (SIGTERM -> checkpoint) at the deadline, and their
# folders are tarred into $OUT to bring back (extract them in the repository root).
PY=${PY:-python3}
DEADLINE=${DEADLINE:-470}
mkdir -p ../shared/data && cp -r devdata/shared/* ../shared/data/ || exit 1
$PY tools/device/rebuild_references.py || exit 1
export PYTHONPATH=$PWD/src${EXTRA_PYTHONPATH:+:$EXTRA_PYTHONPATH} OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null; $PY -c "import torch; print(torch.__version__, torch.cuda.is_available())"
RUNS=${RUNS:-"dncnn-natural dncnn-sar sarcnn-s1-l1-ft sarcnn-s1-l1-long"}
PIDS=()
for r in $RUNS; do
  timeout -s TERM $DEADLINE $PY -m sardespeckle.cli.main train --run-dir training_runs/$r --threads ${THREADS:-3} -q $TRAIN_ARGS > $OUT/$r.log 2>&1 &
  PIDS+=($!)
done
( while sleep 60; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; for r in $RUNS; do echo "$r $(tail -n1 training_runs/$r/log.csv 2>/dev/null)"; done; done ) &
MON=$!
wait "${PIDS[@]}"
kill $MON 2>/dev/null
for r in $RUNS; do tail -n 3 $OUT/$r.log; tail -n 2 training_runs/$r/log.csv; tar cf $OUT/$r.tar training_runs/$r; done
ls -la $OUT
