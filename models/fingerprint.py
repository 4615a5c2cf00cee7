"""Fingerprints of DataFrames: which rows a model was trained on, or a report scored.

Both hash the rows with `pd.util.hash_pandas_object` (index left out, row order kept) and
then the column names; they differ in what else counts, and their values are stored (in
saved models' metadata, in training-cache keys and in reports), so each keeps its output:

* `frame_fingerprint(frame)`: content only. Columns are sorted first, so the same columns
  in another order give the same value; full sha256 hex (64 characters).
* `data_fingerprint(frame)`: content, column order and dtypes (row hashes alone miss a
  renamed column or a changed type); the first 16 hex characters. Stored with each saved
  model as `data_fingerprint`.
* `rows_fingerprint(frame)`: like `data_fingerprint`, but the same rows in any order give
  the same value (the row hashes are sorted first). Hashed into the training-cache key: a
  query without ORDER BY may return the same rows in another order, and must still hit.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd


def _sha256(frame: pd.DataFrame, columns: bytes, *, ordered: bool = True) -> str:
    """sha256 hex of the frame's row hashes (index left out; row order kept, or the hashes
    sorted when not `ordered`), then `columns`."""
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256((rows if ordered else np.sort(rows)).tobytes())
    digest.update(columns)
    return digest.hexdigest()


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of a DataFrame's content (columns sorted, row order kept), for data lineage."""
    ordered = frame.reindex(columns=sorted(frame.columns))
    return _sha256(ordered, ",".join(ordered.columns).encode())


def data_fingerprint(frame: pd.DataFrame) -> str:
    """Rows, column names and types (row hashes alone miss a renamed column); 16 hex chars."""
    types = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()])
    return _sha256(frame, types.encode())[:16]


def rows_fingerprint(frame: pd.DataFrame) -> str:
    """`data_fingerprint` with the rows in any order: the same rows, column names and types
    give the same 16 hex characters however the rows are ordered."""
    types = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()])
    return _sha256(frame, types.encode(), ordered=False)[:16]
