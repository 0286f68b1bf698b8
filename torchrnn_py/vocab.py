"""The 1-based vocabulary of a preprocessed corpus: tokens <-> ids, its JSON file, byte tokens.

This module is the one place that converts between torch-rnn's 1-based token ids and
tokens; nothing 0-based leaves it. A token is a string: one character for vocabularies
made from text, or ``[N]`` (N in decimal) for a byte above 127 in a vocabulary made by
``preprocess --encoding bytes`` (that is how the original names such bytes in its JSON).
"""
import json
import math
import re

import numpy as np

from .errors import TorchRNNError
from .fileio import atomic_output, parse_json, read_input_bytes

_BYTE_TOKEN = re.compile(r"\[(0|[1-9][0-9]{0,2})\]")
_DECIMAL = re.compile(r"[0-9]+")
_MAX_ID_DIGITS = 18        # ids are at most V; longer decimal keys are damage, not ids


def byte_token(value):
    """The token preprocess writes for byte ``value``: itself below 128, else ``[value]``."""
    return chr(value) if value < 128 else f"[{value}]"


def byte_token_value(token):
    """The byte a ``[N]`` token stands for (0 <= N <= 255), or None for any other token."""
    match = _BYTE_TOKEN.fullmatch(token)
    if match is None:
        return None
    value = int(match.group(1))
    return value if value <= 255 else None


def _token_byte(token):
    """The byte a token stands for in a byte vocabulary: ``[N]``, or one char below 256."""
    if len(token) == 1:
        return ord(token) if ord(token) < 256 else None
    return byte_token_value(token)


def _as_id_array(ids):
    """``ids`` (tensor, ndarray, list or int) as a 1-D int64 numpy array."""
    if hasattr(ids, "detach"):  # a torch tensor; avoids importing torch here
        ids = ids.detach().cpu().numpy()
    array = np.asarray(ids)
    if array.ndim > 1:
        raise ValueError(f"token ids must be a 1-D sequence, got shape {tuple(array.shape)}")
    array = array.reshape(-1)
    if array.size == 0:
        return array.astype(np.int64)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _long_tensor(array):
    """A numpy int64 array as a torch.LongTensor (torch imported only when needed)."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


class Vocab:
    """A torch-rnn vocabulary: tokens numbered 1..V.

    ``idx_to_token`` maps int ids to tokens, ``token_to_idx`` the reverse. Build one from a
    dict ``{id: token}`` with ids exactly 1..V, or from a sequence of tokens in id order.
    """

    def __init__(self, idx_to_token, source=None):
        where = f"{source}: " if source else ""
        if isinstance(idx_to_token, dict):
            tokens = _tokens_from_mapping(idx_to_token, where)
        else:
            tokens = list(idx_to_token)
        if not tokens:
            raise TorchRNNError(f"{where}the vocabulary is empty")
        token_to_idx = {}
        for idx, token in enumerate(tokens, start=1):
            if not isinstance(token, str) or not token:
                raise TorchRNNError(f"{where}token of id {idx} must be a non-empty string, "
                                    f"found {token!r}")
            if token in token_to_idx:
                raise TorchRNNError(f"{where}token {token!r} appears twice (ids "
                                    f"{token_to_idx[token]} and {idx})")
            token_to_idx[token] = idx
        self.source = source
        self.tokens = tuple(tokens)
        self.idx_to_token = dict(enumerate(tokens, start=1))
        self.token_to_idx = token_to_idx
        self._single_chars = all(len(t) == 1 for t in tokens)
        self._encode_table = None
        self._code_points = None
        self._token_array = None
        self._multi_pattern = None
        self._multi_firsts = None
        self._bytes_tables = None

    def __len__(self):
        return len(self.tokens)

    @property
    def size(self):
        """Number of tokens V (ids run 1..V)."""
        return len(self.tokens)

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __hash__(self):
        return hash(self.tokens)

    def __repr__(self):
        kind = "bytes" if self.is_bytes else "text"
        return f"Vocab({len(self)} tokens, {kind})"

    @property
    def is_bytes(self):
        """True for a vocabulary that ``--encoding bytes`` made.

        That is: every token is a one-character string below U+0080 or a ``[N]`` token, and at
        least one ``[N]`` token exists. A bytes-mode vocabulary of a pure-ASCII file has no
        ``[N]`` token, so it reads as text; both readings agree on such a vocabulary.
        """
        has_byte_token = False
        for token in self.tokens:
            if len(token) == 1 and ord(token) < 128:
                continue
            if byte_token_value(token) is None:
                return False
            has_byte_token = True
        return has_byte_token

    def to_json(self):
        """The JSON data preprocess writes: ``token_to_idx`` and ``idx_to_token`` (string keys)."""
        return {
            "token_to_idx": dict(self.token_to_idx),
            "idx_to_token": {str(idx): token for idx, token in self.idx_to_token.items()},
        }

    # ----------------------------------------------------------------- text

    def encode(self, text):
        """The 1-based ids of ``text`` as a LongTensor, split greedily by the longest token.

        Raises TorchRNNError naming the first character that no token covers.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if not text:
            return _long_tensor(np.zeros(0, dtype=np.int64))
        if self._single_chars or not self._multi_token_may_occur(text):
            return _long_tensor(self._encode_single_chars(text))
        return _long_tensor(self._encode_greedy(text))

    def _multi_token_may_occur(self, text):
        """False when no multi-character token's first character is in ``text``."""
        if self._multi_firsts is None:
            self._multi_firsts = {t[0] for t in self.tokens if len(t) > 1}
        return any(c in text for c in self._multi_firsts)

    def _encode_single_chars(self, text):
        """Vectorised lookup through a table indexed by code point (0 = no such token)."""
        if self._encode_table is None:
            singles = [(ord(t), i) for t, i in self.token_to_idx.items() if len(t) == 1]
            top = max((cp for cp, _ in singles), default=0)
            table = np.zeros(top + 2, dtype=np.int64)  # last entry stays 0: the "unknown" slot
            for cp, idx in singles:
                table[cp] = idx
            self._encode_table = table
        table = self._encode_table
        code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        ids = table[np.minimum(code_points, len(table) - 1)]
        unknown = ids == 0
        if unknown.any():
            position = int(np.argmax(unknown))
            raise TorchRNNError(self._unknown_char_message(text[position], position))
        return ids

    def _encode_greedy(self, text):
        """Split by the longest token at each position (for ``[N]`` and other long tokens)."""
        if self._multi_pattern is None:
            multi = sorted((t for t in self.tokens if len(t) > 1), key=len, reverse=True)
            self._multi_pattern = re.compile(
                "|".join(re.escape(t) for t in multi) + "|(.)", re.DOTALL)
        ids = []
        lookup = self.token_to_idx
        for match in self._multi_pattern.finditer(text):
            token = match.group(0)
            idx = lookup.get(token)
            if idx is None:
                raise TorchRNNError(self._unknown_char_message(token, match.start()))
            ids.append(idx)
        return np.array(ids, dtype=np.int64)

    def _unknown_char_message(self, char, position):
        where = f" of {self.source}" if self.source else ""
        return (f"character {char!r} (U+{ord(char):04X}) at position {position} is not in "
                f"the vocabulary{where}")

    def decode(self, ids):
        """The text of 1-based ``ids`` (tensor, list or ndarray), one token per id."""
        array = self._checked_ids(ids)
        if self._single_chars:
            if self._code_points is None:
                code_points = np.zeros(len(self) + 1, dtype="<u4")
                code_points[1:] = [ord(t) for t in self.tokens]
                self._code_points = code_points
            return self._code_points[array].tobytes().decode("utf-32-le", "surrogatepass")
        if self._token_array is None:
            token_array = np.empty(len(self) + 1, dtype=object)
            token_array[0] = ""
            token_array[1:] = self.tokens
            self._token_array = token_array
        return "".join(self._token_array[array].tolist())

    def _checked_ids(self, ids):
        array = _as_id_array(ids)
        if array.size:
            bad = (array < 1) | (array > len(self))
            if bad.any():
                position = int(np.argmax(bad))
                raise TorchRNNError(f"token id {int(array[position])} at position {position} is "
                                    f"outside the vocabulary (ids 1..{len(self)})")
        return array

    # ---------------------------------------------------------------- bytes

    def _byte_tables(self):
        """(byte of each id, id of each byte); error unless every token stands for one byte."""
        if self._bytes_tables is None:
            byte_of_id = np.zeros(len(self) + 1, dtype=np.uint8)
            id_of_byte = np.zeros(256, dtype=np.int64)
            for idx, token in enumerate(self.tokens, start=1):
                value = _token_byte(token)
                if value is None:
                    raise TorchRNNError(
                        f"the vocabulary{' of ' + self.source if self.source else ''} is not a "
                        f"byte vocabulary: token {token!r} (id {idx}) is neither [N] nor a "
                        f"single character below U+0100")
                byte_of_id[idx] = value
                if id_of_byte[value] == 0:  # two tokens for one byte: the lower id wins
                    id_of_byte[value] = idx
            self._bytes_tables = (byte_of_id, id_of_byte)
        return self._bytes_tables

    def encode_bytes(self, data):
        """The 1-based ids of raw ``data`` (bytes-like), one token per byte, as a LongTensor."""
        _, id_of_byte = self._byte_tables()
        values = np.frombuffer(bytes(data) if not isinstance(data, bytes) else data,
                               dtype=np.uint8)
        ids = id_of_byte[values]
        unknown = ids == 0
        if unknown.any():
            offset = int(np.argmax(unknown))
            value = int(values[offset])
            raise TorchRNNError(f"byte 0x{value:02X} ({value}) at offset {offset} is not in the "
                                f"vocabulary{' of ' + self.source if self.source else ''}")
        return _long_tensor(ids)

    def decode_bytes(self, ids):
        """The raw bytes of 1-based ``ids``: ``[N]`` gives byte N, a character its code point."""
        byte_of_id, _ = self._byte_tables()
        array = self._checked_ids(ids)
        return byte_of_id[array].tobytes()


def _tokens_from_mapping(mapping, where):
    """Tokens in id order from ``{id: token}``; ids (ints or decimal strings) must be 1..V."""
    by_id = {}
    for key, token in mapping.items():
        if isinstance(key, str) and _DECIMAL.fullmatch(key):
            if len(key) > _MAX_ID_DIGITS:
                raise TorchRNNError(f"{where}token id {key[:20]}... ({len(key)} digits) is "
                                    f"far larger than any vocabulary")
            idx = int(key)
        elif isinstance(key, int) and not isinstance(key, bool):
            idx = key
        else:
            raise TorchRNNError(f"{where}token id {_short(key)} is not a positive integer")
        if idx in by_id:
            raise TorchRNNError(f"{where}token id {idx} appears twice")
        by_id[idx] = token
    if by_id and min(by_id) < 1:
        raise TorchRNNError(f"{where}token id {min(by_id)} is not allowed: ids start at 1")
    missing = next((i for i in range(1, len(by_id) + 1) if i not in by_id), None)
    if missing is not None:
        raise TorchRNNError(f"{where}token ids are not contiguous: expected 1..{len(by_id)}, "
                            f"id {missing} is missing (highest id {_short(max(by_id))})")
    return [by_id[i] for i in range(1, len(by_id) + 1)]


def read_vocab(path):
    """Read the vocabulary JSON that preprocess writes (``idx_to_token`` / ``token_to_idx``).

    ``idx_to_token`` may be an object with decimal-string keys or a list (ids 1..V); with only
    ``token_to_idx`` the vocabulary is rebuilt from it. When both are present they must agree.
    Every malformed file (not UTF-8, not JSON, nested too deeply, a key given twice, ids that
    are not 1..V, tokens that are not strings...) is one TorchRNNError naming the file.
    """
    raw = read_input_bytes(path, "vocabulary file")
    where = f"{path}: "
    data = parse_json(raw, lambda kind, reason: (
        f"{path}: vocabulary file is not UTF-8 text ({reason})" if kind == "utf-8" else
        f"{path}: vocabulary file is not valid JSON ({reason})"))
    if not isinstance(data, dict):
        raise TorchRNNError(f"{where}expected a JSON object with idx_to_token and "
                            f"token_to_idx, found {_json_type(data)}")
    idx_to_token = data.get("idx_to_token")
    token_to_idx = data.get("token_to_idx")
    if idx_to_token is None and token_to_idx is None:
        raise TorchRNNError(f"{where}not a vocabulary file: no 'idx_to_token' or "
                            f"'token_to_idx' key")
    if idx_to_token is not None:
        if isinstance(idx_to_token, list):
            tokens = idx_to_token
        elif isinstance(idx_to_token, dict):
            tokens = _tokens_from_mapping(idx_to_token, where + "idx_to_token: ")
        else:
            raise TorchRNNError(f"{where}idx_to_token must be an object or a list, found "
                                f"{_json_type(idx_to_token)}")
        vocab = Vocab(tokens, source=path)
        if token_to_idx is not None:
            _check_agreement(vocab, token_to_idx, where)
        return _check_unicode(vocab, where)
    if not isinstance(token_to_idx, dict):
        raise TorchRNNError(f"{where}token_to_idx must be an object, found "
                            f"{_json_type(token_to_idx)}")
    inverse = {}
    for token, idx in token_to_idx.items():
        inverse_key = _json_int(idx, where, token)
        if inverse_key in inverse:
            raise TorchRNNError(f"{where}token_to_idx: id {inverse_key} is given to both "
                                f"{_short(inverse[inverse_key])} and {_short(token)}")
        inverse[inverse_key] = token
    return _check_unicode(Vocab(_tokens_from_mapping(inverse, where + "token_to_idx: "),
                                source=path), where)


def _json_type(value):
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_unicode(vocab, where):
    """Tokens must be real text: a lone surrogate (``\\udc80`` in the JSON) cannot be
    written as UTF-8 into a checkpoint or printed, so it is refused here."""
    for idx, token in enumerate(vocab.tokens, start=1):
        try:
            token.encode("utf-8")
        except UnicodeEncodeError:
            raise TorchRNNError(f"{where}token of id {idx} ({_short(token)}) is not valid Unicode "
                                f"text (a lone surrogate)") from None
    return vocab


def _json_int(value, where, token):
    """A JSON number that must be a positive integer id (cjson may write 1 as 1.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value != int(value) or value < 1:
        raise TorchRNNError(f"{where}token_to_idx: id of {_short(token)} must be a positive "
                            f"integer, found {_short(value)}")
    if value >= 10 ** _MAX_ID_DIGITS:
        raise TorchRNNError(f"{where}token_to_idx: id of {_short(token)} is {_short(value)}, "
                            f"far larger than any vocabulary")
    return int(value)


def _short(value, limit=60):
    """``repr(value)``, cut to ``limit`` characters for messages."""
    text = repr(value) if not (isinstance(value, int) and abs(value) >= 10 ** 60) \
        else f"a {len(str(abs(value)))}-digit number"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_agreement(vocab, token_to_idx, where):
    if not isinstance(token_to_idx, dict):
        raise TorchRNNError(f"{where}token_to_idx must be an object, found "
                            f"{_json_type(token_to_idx)}")
    for token, idx in token_to_idx.items():
        if vocab.token_to_idx.get(token) != _json_int(idx, where, token):
            raise TorchRNNError(f"{where}idx_to_token and token_to_idx disagree about token "
                                f"{_short(token)} (id {vocab.token_to_idx.get(token)} vs "
                                f"{_short(idx)})")
    if len(token_to_idx) != len(vocab):
        raise TorchRNNError(f"{where}idx_to_token has {len(vocab)} tokens but token_to_idx "
                            f"has {len(token_to_idx)}")


def write_vocab(path, vocab):
    """Write ``vocab`` as preprocess's JSON, atomically, with json.dump's defaults (ASCII)."""
    if not isinstance(vocab, Vocab):
        vocab = Vocab(vocab)
    with atomic_output(path, "w", what="vocabulary file", encoding="ascii") as f:
        json.dump(vocab.to_json(), f)


def model_token_map(data_vocab, model_vocab, data_source, model_source):
    """How a model meets a dataset's vocabulary (train -init_from/-resume_from, eval).

    Returns None when the two token tables are the same; an int64 array ``ids`` with
    ``ids[data_id] == model_id`` (index 0 unused) when every data token is one of the
    model's, so the data can be translated exactly; raises TorchRNNError naming both files
    and the first tokens the model does not know otherwise.
    """
    data_vocab = data_vocab if isinstance(data_vocab, Vocab) else Vocab(data_vocab)
    model_vocab = model_vocab if isinstance(model_vocab, Vocab) else Vocab(model_vocab)
    if data_vocab.tokens == model_vocab.tokens:
        return None
    unknown = [t for t in data_vocab.tokens if t not in model_vocab.token_to_idx]
    if unknown:
        shown = ", ".join(_short(t, 20) for t in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise TorchRNNError(
            f"{data_source}: its vocabulary is not the model's in {model_source}: "
            f"{len(unknown)} of its {len(data_vocab)} tokens are unknown to the model's "
            f"{len(model_vocab)} ({shown}{more})")
    ids = np.zeros(len(data_vocab) + 1, dtype=np.int64)
    for idx, token in enumerate(data_vocab.tokens, start=1):
        ids[idx] = model_vocab.token_to_idx[token]
    return ids


def token_map_message(token_map, model_size):
    """The one line saying that a dataset's ids are translated to a model's."""
    return (f"the data's {len(token_map) - 1} tokens are mapped to the model's vocabulary "
            f"of {model_size} tokens (ids by token)")
