"""WAV audio <-> headerless 8-bit samples <-> BinToUTF8 text, for training torch-rnn on voices.

The BinToUTF8 experiments trained torch-rnn on raw 8-bit audio at 8000-11025 Hz turned into
text one character per byte. This package does the audio half of that pipeline, so no audio
editor is needed between a WAV file and a model:

    WAV (any rate, PCM/float/G.711, mono or more channels)       -> :mod:`.wav`
      -> mono float in [-1, 1] -> polyphase resampling to the target rate  -> :mod:`.resample`
      -> one byte per sample ('ulaw', 'alaw' or 'pcm')                    -> :mod:`.g711`
      -> BinToUTF8 text (bcl or offset mode, via :mod:`torchrnn_py.bintoutf8`) or the raw
         bytes                                                            -> :mod:`.pipeline`

and back: sampled text -> bytes (characters not in the table counted and skipped) -> WAV.
Everything is held in memory (minutes of 11 kHz audio are a few MB) and vectorised with
numpy; resampling runs in blocks, giving exact results and progress reports. The command
line (``torchrnn-audio``, ``python -m torchrnn_py.audio``) is :mod:`torchrnn_py.cli.audio`.
"""
from .g711 import (FORMAT_NAMES, FORMATS, check_format, decode_table, encode_table,
                   from_8bit, to_8bit)
from .pipeline import (DEFAULT_RATE, TEXT_CHUNK, DecodeSummary, EncodeSummary, bytes_to_wav,
                       check_text_options, decode_audio, encode_audio, wav_to_bytes)
from .resample import (BLOCK_SAMPLES, MAX_RATE, MAX_RESAMPLE_TERM, MIN_RATE, check_rate,
                       resample)
from .wav import WavInfo, read_wav, read_wav_info, write_wav

__all__ = [
    "FORMAT_NAMES", "FORMATS", "check_format", "decode_table", "encode_table", "from_8bit",
    "to_8bit", "DEFAULT_RATE", "TEXT_CHUNK", "DecodeSummary", "EncodeSummary",
    "bytes_to_wav", "check_text_options", "decode_audio", "encode_audio", "wav_to_bytes",
    "BLOCK_SAMPLES", "MAX_RATE", "MAX_RESAMPLE_TERM", "MIN_RATE", "check_rate", "resample",
    "WavInfo", "read_wav", "read_wav_info", "write_wav", "main",
]
