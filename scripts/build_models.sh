#!/usr/bin/env bash
# Rebuild the bundled models in exported/ from tinyshakespeare, with termlm's own commands: the only
# way those files are made. Each card records the exact `termlm train` command run here.
#
#   scripts/build_models.sh CORPUS [NAME...]            # train, export, then rewrite exported/README.md
#   scripts/build_models.sh --check CORPUS [NAME...]    # determinism: each recipe twice, short, compared
#
# CORPUS is tinyshakespeare.txt (its SHA-256 is checked: the cards name it). NAME picks models
# (default: all four). Budgets are optimizer steps, never minutes (a time budget trains another
# model on another machine); the seed is fixed and training runs on one CPU thread, so the same
# command gives the same weights and the same figures. --check trains each recipe twice with
# --max-steps 20 and fewer validation tokens, in a scratch folder, and fails unless both runs end
# with the same figures and the same weights (any corpus will do).
set -euo pipefail
check=0
if [[ ${1:-} == --check ]]; then check=1; shift; fi
corpus=${1:?usage: scripts/build_models.sh [--check] CORPUS [NAME...]}
shift
[[ -f $corpus ]] || { echo "error: no such corpus: $corpus" >&2; exit 1; }
corpus=$(cd "$(dirname "$corpus")" && pwd)/$(basename "$corpus")
cd "$(dirname "$0")/.."
TINYSHAKESPEARE_SHA256=86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed
ALL=(shakespeare-char shakespeare-word shakespeare-dialogue shakespeare-attention)
if (($#)); then names=("$@"); else names=("${ALL[@]}"); fi

recipe() {  # the termlm train options of one bundled model
  case $1 in
    # The default chat model: a character-level LSTM.
    shakespeare-char) echo --level char --arch lstm --hidden 512 --embed 64 --context 128 \
      --batch-size 32 --lr 3e-3 --dropout 0.2 --seed 1337 --max-steps 6000 ;;
    # The tutorial's word-level LSTM, trained the stream way on the whole corpus, with the word
    # defaults: an adaptive softmax (its clusters pinned), AWD-LSTM's regularisation (with its
    # embedding dropout and weight drop, which a run this long can afford) and a weight average;
    # three layers reading 256 words a chunk at a higher learning rate (README: the probes).
    shakespeare-word) echo --level word --arch lstm --max-vocab 6000 --tie --hidden 256 --embed 256 \
      --layers 3 --context 256 --batch-size 16 --lr 8e-3 --dropout 0.4 --seed 1337 --max-steps 1400 --patience 4 \
      --softmax adaptive --cutoffs 1000,3000 --embed-dropout 0.1 --weight-drop 0.4 --locked-dropout \
      --ar 2 --tar 1 --ema 0.999 ;;
    # The same word LSTM with case, punctuation and line breaks kept as tokens: it writes
    # "NAME:" lines and ends a speech with a blank line, so the chat's dialogue mode works with it.
    shakespeare-dialogue) echo --level word --keep-case --punctuation keep --arch lstm --max-vocab 6000 \
      --tie --hidden 256 --embed 256 --layers 3 --context 256 --batch-size 16 --lr 8e-3 --dropout 0.4 \
      --seed 1337 --max-steps 1400 --patience 4 --softmax adaptive --cutoffs 1000,3000 --embed-dropout 0.1 \
      --weight-drop 0.4 --locked-dropout --ar 2 --tar 1 --ema 0.999 ;;
    # An LSTM with attention over its own past, for the attention inspector.
    shakespeare-attention) echo --level char --arch attention --hidden 256 --embed 64 --context 128 \
      --batch-size 16 --lr 3e-3 --dropout 0.1 --seed 1337 --max-steps 1500 ;;
    *) echo "error: no bundled model named $1 (one of: ${ALL[*]})" >&2; return 1 ;;
  esac
}

train() {  # folder, name, then extra options (after the recipe's: the last value of an option wins)
  local out=$1 name=$2; shift 2
  local options
  options=$(recipe "$name")
  rm -rf "${out:?}/$name"
  # shellcheck disable=SC2086  # the recipe is a list of words
  termlm train "$corpus" --out "$out" --name "$name" --threads 1 --quiet --json $options "$@" \
    > "$out/$name.json"
}

if (( check )); then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  status=0
  for name in "${names[@]}"; do
    for copy in a b; do
      mkdir -p "$scratch/$copy"
      SECONDS=0
      train "$scratch/$copy" "$name" --max-steps 20 --eval-tokens 512
      echo "$name ($copy): ${SECONDS} s" >&2
    done
    python - "$scratch" "$name" <<'PY' || status=1
import hashlib, json, sys
from pathlib import Path
scratch, name = Path(sys.argv[1]), sys.argv[2]
keys = ("val_loss", "val_bpc", "val_ppl", "params", "steps", "best_step", "sample")
runs = []
for copy in "ab":
    result = json.loads((scratch / copy / f"{name}.json").read_text())
    weights = hashlib.sha256((scratch / copy / name / "best.safetensors").read_bytes()).hexdigest()
    runs.append(({k: result.get(k) for k in keys}, weights))
same = runs[0] == runs[1]
figures = runs[0][0]
print(f"{name:22} val_loss {figures['val_loss']:.6f} / {runs[1][0]['val_loss']:.6f}  "
      f"steps {figures['steps']}  weights {runs[0][1][:12]} / {runs[1][1][:12]}  "
      + ("same" if same else "DIFFERENT"))
sys.exit(0 if same else 1)
PY
  done
  exit $status
fi

sha=$(python -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$corpus")
if [[ $sha != "$TINYSHAKESPEARE_SHA256" ]]; then
  echo "error: $corpus is not tinyshakespeare.txt (SHA-256 $sha); the bundled cards name that text" >&2
  exit 1
fi
runs=${RUNS:-runs/bundled}
mkdir -p "$runs"
for name in "${names[@]}"; do
  SECONDS=0
  train "$runs" "$name"
  termlm export "$runs/$name" -o "exported/$name.onnx"
  echo "$name: trained and exported in $((SECONDS / 60)) min" >&2
done
python scripts/model_cards.py
