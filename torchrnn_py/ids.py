"""Token ids are 1-based at every public boundary, as in torch-rnn; these two functions are
the only places that move between them and 0-based indices (embedding rows, score columns).
"""


def to_index(token_ids):
    """1-based token ids -> 0-based row indices (embedding rows, score columns)."""
    return token_ids - 1


def to_token_id(index):
    """0-based row indices -> 1-based token ids."""
    return index + 1
