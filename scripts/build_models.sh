#!/usr/bin/env bash
# Rebuild every bundled model in exported/ from the corpus, with termlm's own commands.
#   scripts/build_models.sh path/to/tinyshakespeare.txt
# Each step trains on one thread under a wall-clock budget, then exports with the card inside.
set -euo pipefail
corpus=${1:?usage: scripts/build_models.sh CORPUS}
runs=${RUNS:-runs/bundled}
cd "$(dirname "$0")/.."

train() {  # name, then termlm train options
  local name=$1; shift
  rm -rf "$runs/$name"
  termlm train "$corpus" --out "$runs" --name "$name" --threads 1 --quiet --json "$@" > "$runs/$name.json"
}

mkdir -p "$runs"
# The default chat model: a character-level LSTM.
train shakespeare-char --level char --arch lstm --hidden 512 --embed 64 --context 128 \
  --batch-size 32 --lr 3e-3 --dropout 0.2 --minutes 35
# The tutorial's word-level LSTM, trained the stream way on the whole corpus (a full softmax and
# dropout only: the word defaults before the adaptive softmax and AWD-LSTM's regularisation).
train shakespeare-word --level word --arch lstm --max-vocab 6000 --tie --hidden 256 --embed 256 \
  --context 32 --batch-size 16 --lr 3e-3 --dropout 0.5 --minutes 22 --patience 4 \
  --softmax full --embed-dropout 0 --weight-drop 0 --no-locked-dropout --ar 0 --tar 0
# An LSTM with attention over its own past, for the attention inspector.
train shakespeare-attention --level char --arch attention --hidden 256 --embed 64 --context 128 \
  --batch-size 16 --lr 3e-3 --dropout 0.1 --minutes 15

for name in shakespeare-char shakespeare-word shakespeare-attention; do
  termlm export "$runs/$name" -o "exported/$name.onnx"
done
python scripts/model_cards.py
