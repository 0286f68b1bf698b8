#!/usr/bin/env bash
# The blog's experiment at a small scale: a network learns raw 8-bit voice audio and babbles
# back in that voice. Speech that no one here recorded: espeak-ng reads a few minutes of
# Shakespeare into a WAV. Then: WAV -> 8 kHz mu-law bytes -> BinToUTF8 text -> preprocess
# -> train -> sample with a seed -> bytes -> WAV, plus the loss curve and spectrograms.
# About 15-20 minutes on a 2-core CPU. Run from the repository root, in its virtualenv
# (pip install -e '.[plot]'); everything goes to $OUT (default out/voice).
#
#   bash examples/voice.sh                 # the whole recipe
#   MINUTES=1 ITERS=200 bash examples/voice.sh   # a quick smoke run
set -euo pipefail

OUT=${OUT:-out/voice}
RATE=${RATE:-8000}           # samples per second of the audio the network learns
CHARS=${CHARS:-3200}         # how much text espeak-ng reads (about 3 minutes of speech)
ITERS=${ITERS:-2400}         # training iterations (batch 50 x 100 samples each)
SECONDS_OUT=${SECONDS_OUT:-10}
SEED=${SEED:-1}
mkdir -p "$OUT"

# 0. espeak-ng, from Debian's packages, if it is not there yet
if ! command -v espeak-ng >/dev/null; then
  echo "== installing espeak-ng"
  SUDO=$([ "$(id -u)" = 0 ] && echo || echo sudo)
  $SUDO apt-get install -y -q espeak-ng >/dev/null || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q espeak-ng >/dev/null; }
fi

# 1. a few minutes of speech
echo "== 1. speech: espeak-ng reads $CHARS characters of tiny-shakespeare"
head -c "$CHARS" torchrnn_py/data/tiny-shakespeare.txt > "$OUT/script.txt"
espeak-ng -v en-us -s 150 -w "$OUT/speech.wav" -f "$OUT/script.txt"

# 2. WAV -> 8-bit mu-law at $RATE Hz -> BinToUTF8 text (one character per sample) + table
echo "== 2. encode"
torchrnn-audio encode "$OUT/speech.wav" "$OUT/voice.txt" --rate "$RATE" --format ulaw \
  --table "$OUT/voice.bcl"

# 3. the usual torch-rnn preprocessing
echo "== 3. preprocess"
torchrnn-preprocess --input_txt "$OUT/voice.txt" --output_h5 "$OUT/voice.h5" \
  --output_json "$OUT/voice.json"

# 4. train: audio needs longer sequences than text; 2 x 256 is what a CPU can train here
echo "== 4. train ($ITERS iterations)"
NUM_TRAIN=$(python -c "
import h5py; n = h5py.File('$OUT/voice.h5')['train'].shape[0]
print(max(1, (n - 1) // 5000 if n % 5000 else n // 5000 - 1))")
EPOCHS=$(python -c "print(max(1, round($ITERS / $NUM_TRAIN)))")
torchrnn-train -input_h5 "$OUT/voice.h5" -input_json "$OUT/voice.json" -gpu -1 \
  -rnn_size 256 -num_layers 2 -wordvec_size 64 -batch_size 50 -seq_length 100 \
  -max_epochs "$EPOCHS" -learning_rate 2e-3 -lr_decay_every 4 -checkpoint_every 0 \
  -print_every 50 -seed "$SEED" -checkpoint_name "$OUT/cv/voice" -log_csv "$OUT/train.csv"
CHECKPOINT=$(ls -t "$OUT"/cv/voice_*.t7 | head -1)

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
