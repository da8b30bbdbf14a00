"""The block parsers of text tables: the byte parser of whole numbers against numpy.loadtxt,
what it refuses, and whole tables through each parser (read_target)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import scdeal.data.singlecell as singlecell
import scdeal.data.textblocks as textblocks
from scdeal.data.singlecell import read_target
from scdeal.data.textblocks import parse_counts


def _lines(values: np.ndarray, names=None, sep="\t", last_newline=True) -> list[bytes]:
    names = names or [f"G{i}" for i in range(len(values))]
    text = [sep.join([name, *map(str, row)]) + "\n" for name, row in zip(names, values,
                                                                            strict=True)]
    if not last_newline:
        text[-1] = text[-1].rstrip("\n")
    return [line.encode() for line in text]


@pytest.mark.parametrize("sep", ["\t", ","])
@pytest.mark.parametrize("last_newline", [True, False])
@pytest.mark.parametrize("part_bytes", [1 << 20, 300])  # whole, or in parts of a few lines
def test_whole_numbers_parse_as_numpy_loadtxt_does(sep, last_newline, part_bytes, monkeypatch):
    monkeypatch.setattr(textblocks, "PARSE_BYTES", part_bytes)
    rng = np.random.default_rng(0)
    values = (rng.random((30, 50)) < 0.2) * rng.integers(1, 10 ** rng.integers(1, 10, (30, 50)))
    values[3] = 0  # a row of zeros
    values[5, -1] = 999_999_999  # the longest number read, last in its line
    values[6, 0] = 7  # first in its line
    lines = _lines(values, sep=sep, last_newline=last_newline)
    X = parse_counts(lines, sep.encode(), 50)
    assert sp.isspmatrix_csr(X) and X.dtype == np.float32
    expected = np.loadtxt([line.decode() for line in lines], delimiter=sep,
                          usecols=range(1, 51), dtype=np.float32)
    np.testing.assert_array_equal(X.toarray(), expected)
    assert X.nnz == np.count_nonzero(values)


@pytest.mark.parametrize("field", ["1.5", "-3", "1e3", "", "NA", "007", '"4"', "1234567890",
                                   " 4", "4\r"])
def test_anything_but_plain_whole_numbers_is_left_to_the_other_parsers(field):
    lines = [b"G0\t1\t2\t3\n", f"G1\t5\t{field}\t0\n".encode()]
    assert parse_counts(lines, b"\t", 3) is None


def test_a_line_with_another_number_of_fields_is_left_to_the_other_parsers():
    assert parse_counts([b"G0\t1\t2\t3\n", b"G1\t1\t2\n"], b"\t", 3) is None
    assert parse_counts([b"G0\t1\t2\t3\n", b"G1\t1\t2\t3\t4\n"], b"\t", 3) is None


def _table(path, rows: list[str], header="gene\tc0\tc1\tc2", newline="\n"):
    path.write_bytes((newline.join([header, *rows]) + newline).encode())
    return path


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_tables_read_the_same_whichever_parser_reads_each_block(tmp_path, monkeypatch, newline):
    """Block 1: counts (byte parser); block 2: a decimal (numpy.loadtxt); block 3: a quoted
    value (pandas); block 4: counts again."""
    monkeypatch.setattr(singlecell, "TEXT_CHUNK_ROWS", 2)
    rows = ["A\t0\t3\t0", '"B"\t12\t0\t0',
            "C\t0.5\t0\t1", "D\t0\t0\t2",
            'E\t4\t"7"\t0', "F\t0\t0\t0",
            "G\t0\t0\t0", "H\t1\t0\t100"]
    path = _table(tmp_path / "t.txt", rows, newline=newline)
    adata = read_target(path, orientation="genes_by_cells")
    expected = np.array([[0, 3, 0], [12, 0, 0], [0.5, 0, 1], [0, 0, 2], [4, 7, 0],
                         [0, 0, 0], [0, 0, 0], [1, 0, 100]], dtype=np.float32).T
    X = adata.X.toarray() if sp.issparse(adata.X) else adata.X
    np.testing.assert_array_equal(X, expected)
    assert list(adata.var_names) == list("ABCDEFGH")
    assert list(adata.obs_names) == ["c0", "c1", "c2"]


def test_lone_carriage_returns_get_one_clear_error(tmp_path):
    path = _table(tmp_path / "t.txt", ["A\t0\t3\t0"], newline="\r")
    with pytest.raises(singlecell.ScdealError, match="lone carriage return"):
        read_target(path, orientation="genes_by_cells")
