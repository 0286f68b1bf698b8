"""``-log_csv``: one CSV row per training iteration, written as the run goes."""
import os

from .fileio import atomic_output, check_output_path


class CsvLog:
    """One row per iteration (-log_csv), flushed as written so a run can be followed live.
    ``keep_until``: resuming from iteration i keeps the rows up to i and appends after them."""

    HEADER = "i,epoch,loss,learning_rate,seconds,val_loss\n"

    def __init__(self, path, keep_until=None):
        check_output_path(path, "CSV log", create_dir=True)
        kept = []
        if keep_until is not None and os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                kept = [line for line in f.readlines()[1:]
                        if line.split(",", 1)[0].isdigit()
                        and int(line.split(",", 1)[0]) <= keep_until]
        with atomic_output(path, "w", what="CSV log", encoding="utf-8") as f:
            f.write(self.HEADER)
            f.writelines(kept)
        self.file = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, i, epoch, loss, learning_rate, seconds, val_loss):
        val = "" if val_loss is None else repr(val_loss)
        self.file.write(f"{i},{epoch!r},{loss!r},{learning_rate!r},{seconds:.3f},{val}\n")

    def close(self):
        self.file.close()
