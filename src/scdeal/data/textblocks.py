"""The numbers of a text table, parsed a block of lines at a time (for
:mod:`scdeal.data.singlecell`).

Each block goes to the fastest parser that can read it, falling through to the next when it
cannot: whole non-negative numbers (UMI counts: the common case of a large table) by numpy
on the block's bytes, straight to CSR; any numbers by ``numpy.loadtxt``; anything else
(empty or NA fields, quoted values, rows of another length) by pandas, with its NaN and its
errors. Measured on a droplet table of 21,207 genes x 8,600 barcodes: benchmarks/README.md,
section 8.
"""

from __future__ import annotations

import gzip
import io
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

# The longest whole number the byte parser reads (int64 and float32 both hold it exactly
# enough); a longer one goes to numpy.loadtxt.
MAX_DIGITS = 9
# The byte parser reads at most this many bytes of lines at once: its work arrays take about
# 12 bytes per byte of text.
PARSE_BYTES = 8 << 20


def read_numeric_blocks(path: Path, sep: str, n_values: int, *, chunk_rows: int,
                        sparse_zeros: float) -> tuple:
    """The values (dense, or CSR when the table is sparse: see :func:`maybe_sparse`) and the
    row names of a table whose first column holds the row names and every other column a
    number, below its header line; ``chunk_rows`` lines at a time."""
    with opener_for(path)(path, "rb") as handle:
        handle.readline()  # the header
        blocks, names = [], []
        byte_sep = sep.encode()
        while lines := [line for line in itertools.islice(handle, chunk_rows) if line.strip()]:
            if any(line.endswith(b"\r\n") for line in lines):
                lines = [line.replace(b"\r\n", b"\n") for line in lines]
            values = parse_counts(lines, byte_sep, n_values)
            if values is None:
                values = _parse_any(lines, sep, n_values)
            blocks.append(maybe_sparse(values, blocks, sparse_zeros))
            names += [_unquote(line.partition(byte_sep)[0].decode("utf-8")) for line in lines]
    return _stack(blocks, n_values), names


def opener_for(path: Path):
    """``gzip.open`` for a ``.gz`` name, else ``open``."""
    return gzip.open if path.name.lower().endswith(".gz") else open


def _stack(blocks: list, n_values: int):
    if not blocks:
        return np.zeros((0, n_values), dtype=np.float32)
    return sp.vstack(blocks, format="csr") if sp.issparse(blocks[0]) else np.concatenate(blocks)


def parse_counts(lines: list[bytes], sep: bytes, n_values: int) -> sp.csr_matrix | None:
    """The values of ``lines`` (each a row name, then ``n_values`` fields, all separated by
    ``sep``) as a float32 CSR matrix, when every field is a whole non-negative number written
    as digits; None when one is not (a sign, a decimal point, an exponent, quotes, an empty
    field, a leading zero, more than :data:`MAX_DIGITS` digits) or a line holds another number
    of fields.

    The block's bytes are read as a numpy array: a field starts after a separator or a line
    end, and only the fields that do not start with ``0`` are read further, so the cost is a
    few passes over the bytes plus a little per non-zero value.

    Examples
    --------
    >>> X = parse_counts([b"TP53\\t0\\t12\\t0\\n", b"EGFR\\t3\\t0\\t105\\n"], b"\\t", 3)
    >>> X.toarray().tolist()
    [[0.0, 12.0, 0.0], [3.0, 0.0, 105.0]]
    >>> parse_counts([b"TP53\\t0\\t1.5\\t0\\n"], b"\\t", 3) is None  # not a whole number
    True
    """
    if len(sep) != 1 or not all(line.count(sep) == n_values for line in lines):
        return None
    sizes = np.cumsum([len(line) for line in lines])
    if sizes[-1] > PARSE_BYTES and len(lines) > 1:  # in parts, to bound the work arrays
        cuts = np.searchsorted(sizes, np.arange(PARSE_BYTES, sizes[-1], PARSE_BYTES))
        bounds = [0, *sorted(set(np.clip(cuts, 1, len(lines) - 1).tolist())), len(lines)]
        parts = [_parse_count_part(lines[a:b], sep, n_values)
                 for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return None if any(p is None for p in parts) else sp.vstack(parts, format="csr")
    return _parse_count_part(lines, sep, n_values)


def _parse_count_part(lines: list[bytes], sep: bytes, n_values: int) -> sp.csr_matrix | None:
    body = b"".join(line.partition(sep)[2] for line in lines)
    if not body.endswith(b"\n"):
        body += b"\n"
    text = np.frombuffer(body, dtype=np.uint8)
    digit = text - np.uint8(ord("0"))  # uint8: every byte that is not a digit wraps above 9
    boundary = digit > 9
    ends = np.flatnonzero(boundary)  # where each field ends, in order
    if len(ends) != len(lines) * n_values:  # a byte other than a digit, sep or line end
        return None
    start = np.empty_like(boundary)
    start[0], start[1:] = True, boundary[:-1]
    if boundary[0] or np.any(boundary[1:] & start[1:]):  # an empty field
        return None
    if np.any(start[:-1] & (digit[:-1] == 0) & ~boundary[1:]):  # a leading zero
        return None
    first = np.flatnonzero(start & ~boundary & (digit != 0))  # fields that are not 0
    field = np.searchsorted(ends, first)
    length = ends[field] - first
    if len(first) and length.max() > MAX_DIGITS:
        return None
    values = digit[first].astype(np.int64)
    for k in range(1, int(length.max()) if len(first) else 0):
        more = np.flatnonzero(length > k)
        values[more] = values[more] * 10 + digit[first[more] + k]
    rows, columns = np.divmod(field, n_values)
    indptr = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(lines)), out=indptr[1:])
    return sp.csr_matrix((values.astype(np.float32), columns.astype(np.int32), indptr),
                         shape=(len(lines), n_values))


def _parse_any(lines: list, sep: str, n_values: int) -> np.ndarray:
    """Any numbers by numpy.loadtxt (measured: 1.4 s against 5.4 s for pandas' C parser on
    3,000 rows x 8,600 values); what it cannot parse by pandas."""
    if isinstance(lines[0], bytes):
        lines = [line.decode("utf-8") for line in lines]
    if all(line.count(sep) == n_values for line in lines):
        try:
            return np.loadtxt(lines, delimiter=sep, usecols=range(1, n_values + 1),
                              dtype=np.float32, ndmin=2, comments=None)
        except ValueError:
            pass
    return pd.read_csv(io.StringIO("".join(lines)), sep=sep, header=None, engine="c",
                       usecols=range(1, n_values + 1), dtype=np.float32).to_numpy(np.float32)


def maybe_sparse(block, previous: list, sparse_zeros: float):
    """A block as read, or as CSR when the table is sparse, or dense when it is not: judged on
    the first block (``sparse_zeros`` or more of its values zeros, as droplet UMIs), then the
    same for every block."""
    first = previous[0] if previous else block
    if first is block:
        n = block.shape[0] * block.shape[1]
        zeros = n - (block.nnz if sp.issparse(block) else np.count_nonzero(block))
        keep_sparse = n > 0 and zeros >= sparse_zeros * n
    else:
        keep_sparse = sp.issparse(first)
    if keep_sparse:
        return block if sp.issparse(block) else sp.csr_matrix(block)
    return block.toarray() if sp.issparse(block) else block


def _unquote(name: str) -> str:
    name = name.strip("\r\n")
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] == '"' else name
