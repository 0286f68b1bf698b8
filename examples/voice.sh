#!/usr/bin/env bash
# The blog's experiment at a small scale: a network learns raw 8-bit voice audio and babbles
# back in that voice. Speech that no one here recorded: espeak-ng reads a few minutes of
# Shakespeare into a WAV. Then: WAV -> 8 kHz mu-law bytes -> BinToUTF8 text -> preprocess
# -> train -> sample with a seed -> bytes -> WAV, plus the loss curve and spectrograms.
# Run from the repository root, in its virtualenv (pip install -e '.[plot]'); everything
# goes to $OUT (default out/voice). Times on a 2-core CPU (docs/audio.md):
#
#   bash examples/voice.sh         # the whole recipe: 236 s of speech, 8 epochs (2,416
#                                  # iterations), 10 s sampled; about 10 minutes
#   MINUTES=1 ITERS=100 SECONDS_OUT=2 bash examples/voice.sh   # a quick run: 60 s of
#                                  # speech, 100 iterations, 2 s sampled; a few minutes
set -euo pipefail

OUT=${OUT:-out/voice}
RATE=${RATE:-8000}           # samples per second of the audio the network learns
MINUTES=${MINUTES:-}         # minutes of speech to learn from (default: all that CHARS make)
CHARS=${CHARS:-}             # how much text espeak-ng reads (default 3200: 236 s of speech;
                             # with MINUTES, enough for that long)
EPOCHS=${EPOCHS:-8}          # passes over the training audio ...
ITERS=${ITERS:-}             # ... or exactly this many iterations (batch 50 x 100 samples)
SECONDS_OUT=${SECONDS_OUT:-10}
SEED=${SEED:-1}
[[ -z "$ITERS" || "$ITERS" =~ ^[1-9][0-9]*$ ]] || { echo "voice.sh: ITERS must be a whole number above 0, found '$ITERS'" >&2; exit 1; }
[[ "$EPOCHS" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "voice.sh: EPOCHS must be a number, found '$EPOCHS'" >&2; exit 1; }
CHARS=$(python - "$MINUTES" "$CHARS" <<'PY'
import math, sys
minutes, chars = sys.argv[1:]
if minutes:
    try:
        limit = float(minutes)
    except ValueError:
        limit = math.nan
    if not 0 < limit < math.inf:
        sys.exit(f"voice.sh: MINUTES must be a number of minutes above 0, found {minutes!r}")
print(chars or (int(limit * 60 * 16) + 100 if minutes else 3200))   # espeak: ~13.6 chars/s
PY
)
mkdir -p "$OUT"

# 0. espeak-ng, from Debian's packages, if it is not there yet
if ! command -v espeak-ng >/dev/null; then
  echo "== installing espeak-ng"
  SUDO=$([ "$(id -u)" = 0 ] && echo || echo sudo)
  $SUDO apt-get install -y -q espeak-ng >/dev/null || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q espeak-ng >/dev/null; }
fi

# 1. a few minutes of speech (cut to $MINUTES minutes when given)
echo "== 1. speech: espeak-ng reads $CHARS characters of tiny-shakespeare"
head -c "$CHARS" torchrnn_py/corpus/tiny-shakespeare.txt > "$OUT/script.txt"
espeak-ng -v en-us -s 150 -w "$OUT/speech.wav" -f "$OUT/script.txt"
python - "$OUT/speech.wav" "$MINUTES" <<'PY'
import sys
from scipy.io import wavfile
path, minutes = sys.argv[1], sys.argv[2]
rate, data = wavfile.read(path)
if minutes:
    data = data[:int(min(float(minutes) * 60 * rate, len(data)))]
    wavfile.write(path, rate, data)
print(f"   {len(data) / rate:.1f} s of speech in {path}")
PY

# 2. WAV -> 8-bit mu-law at $RATE Hz -> BinToUTF8 text (one character per sample) + table
echo "== 2. encode"
torchrnn-audio encode "$OUT/speech.wav" "$OUT/voice.txt" --rate "$RATE" --format ulaw \
  --table "$OUT/voice.bcl"

# 3. the usual torch-rnn preprocessing
echo "== 3. preprocess"
torchrnn-preprocess --input_txt "$OUT/voice.txt" --output_h5 "$OUT/voice.h5" \
  --output_json "$OUT/voice.json"

# 4. train: audio needs longer sequences than text; 2 x 256 is what a CPU can train here
# -max_epochs may be fractional: train runs floor(max_epochs x training batches) iterations
NUM_TRAIN=$(python -c "from torchrnn_py import DataLoader
print(DataLoader('$OUT/voice.h5', batch_size=50, seq_length=100).split_sizes['train'])")
if [ -n "$ITERS" ]; then EPOCHS=$(python -c "print(($ITERS + 0.5) / $NUM_TRAIN)"); fi
LAST=$(python -c "import math; print(math.floor($EPOCHS * $NUM_TRAIN))")
echo "== 4. train ($LAST iterations, $NUM_TRAIN per epoch)"
torchrnn-train -input_h5 "$OUT/voice.h5" -input_json "$OUT/voice.json" -gpu -1 \
  -rnn_size 256 -num_layers 2 -wordvec_size 64 -batch_size 50 -seq_length 100 \
  -max_epochs "$EPOCHS" -learning_rate 2e-3 -lr_decay_every 4 -checkpoint_every 0 \
  -print_every 50 -seed "$SEED" -checkpoint_name "$OUT/cv/voice" -log_csv "$OUT/train.csv"
CHECKPOINT="$OUT/cv/voice_$LAST.t7"

# 5. sample with a seed: the table turns the sampled characters back into bytes
echo "== 5. sample $SECONDS_OUT seconds from $CHECKPOINT"
torchrnn-sample -checkpoint "$CHECKPOINT" -gpu -1 -length $((RATE * SECONDS_OUT)) \
  -seed "$SEED" -temperature 0.9 -output_file "$OUT/sample.txt"
# 6. text -> bytes -> WAV (characters not in the table, if any, are counted and skipped)
echo "== 6. decode"
torchrnn-audio decode "$OUT/sample.txt" "$OUT/sample.wav" --rate "$RATE" --format ulaw \
  --table "$OUT/voice.bcl"
# the training audio as the network saw it, for comparison
torchrnn-audio decode "$OUT/voice.txt" "$OUT/training_8bit.wav" --rate "$RATE" \
  --format ulaw --table "$OUT/voice.bcl" --quiet

# 7. pictures
echo "== 7. plots"
torchrnn-plot "${CHECKPOINT%.t7}.json" -o "$OUT/loss.png" --title "voice, 2x256 LSTM"
torchrnn-plot --spectrogram "$OUT/training_8bit.wav" "$OUT/sample.wav" --seconds 6 \
  -o "$OUT/spectrograms.png"
echo "== done: listen to $OUT/sample.wav (and $OUT/training_8bit.wav)"
