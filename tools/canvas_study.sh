#!/bin/sh
# Issue 35's scale study on fashion-mnist-canvas at the full budget, resumable: rerun it
# after an interruption and it continues where it stopped (every step skips what is done).
#  1. the paper's chain (vggnet reproduce): A-S1 from scratch, D-S1 from A, D-S2 from D-S1,
#     D-jittered from D-S2; width 0.5, 10 epochs (4 when fine-tuning), bf16, all 60,000
#     training scenes, scored on all 10,000 test scenes;
#  2. the direct test: D at S2 and jittered, each trained exactly as D-S1 (from A-S1,
#     10 epochs at lr 0.1), only S differs;
#  3. the direct test's nets and D-S1 scored once at every Q their rows need (dense; the
#     jittered net also 3x3 multi-crop), on all 10,000 test scenes, for `vggnet ensemble`.
# Usage: sh tools/canvas_study.sh   (from the repository root; about six hours on 2 cores)
set -e
V=${VGGNET:-.venv/bin/vggnet}
DATA=fashion-mnist-canvas
OUT=runs/canvas-full
$V reproduce --data $DATA --out $OUT --configs A D --crop-size 64 --budget full \
  --epochs 10 --finetune-epochs 4 --precision bf16 --device cpu
COMMON="--config D --data $DATA --crop-size 64 --batch-size 128 --lr 0.1 --dropout 0 \
  --epochs 10 --seed 0 --device cpu --precision bf16 --width 0.5 --fc-width 512 --batch-norm \
  --init kaiming --init-from $OUT/cells/A-S1/train/last.ckpt --schedule linear --warmup 0.5 \
  --normalize standard --channels-last"
for NET in D-S2-fromA:110 D-jitter-fromA:73:146; do
  NAME=${NET%%:*}
  RUN=$OUT/direct/$NAME
  if [ -f $RUN/last.ckpt ]; then
    $V train --out $RUN --resume
  else
    $V train $COMMON --scale ${NET#*:} --out $RUN
  fi
done
score() {  # score NET once (kept as SCORES) by METHOD at the test scales QS
  [ -f "$2" ] || $V eval --checkpoint $OUT/$1/last.ckpt --data $DATA --method $3 --scales $4 \
    --grid 3 --save-scores "$2" --device cpu
}
score direct/D-S2-fromA $OUT/direct/D-S2-fromA.scores.pt dense 73,101,110,119,146
score direct/D-jitter-fromA $OUT/direct/D-jitter-fromA.scores.pt dense+multi-crop 73,109,110,146
score cells/D-S1/train $OUT/direct/D-S1.scores.pt dense 64,73,82,110,146
echo "canvas study: all done"
# 4. The direct test's rows: the saved posteriors recombined per protocol, each net at its
#    own scales (Table 3's single Q, Table 4's Q set, Table 5 for the jittered net), and
#    dense at Q = 73, 110, 146 (robustness to the test scale); into direct/tables.txt.
row() {  # one `vggnet ensemble` line: protocol, scales, flip, top-1 %, top-5 %, images
  $V ensemble "$@" | tail -1
}
tables() {
  for spec in "D-S1 73 64,73,82" "D-S2-fromA 110 101,110,119" "D-jitter-fromA 109 73,109,146"; do
    set -- $spec
    S=$OUT/direct/$1.scores.pt
    echo "== $1"
    echo "table 3, dense, Q = $2: $(row $S --method dense --scales $2)"
    echo "table 4, dense, Q = $3: $(row $S --method dense --scales $3)"
    if [ "$1" = D-jitter-fromA ]; then
      echo "table 5, multi-crop: $(row $S --method multi-crop --scales $3)"
      echo "table 5, dense + multi-crop: $(row $S --method dense+multi-crop --scales $3)"
    fi
    for q in 73 110 146; do echo "dense, Q = $q: $(row $S --method dense --scales $q)"; done
  done
}
tables > $OUT/direct/tables.txt
cat $OUT/direct/tables.txt
