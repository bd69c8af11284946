"""The serving codecs as pure functions: request bodies decode to honest types, outputs
encode to JSON tensors, binary BYTES tensors decode.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest

from mlbox.serving.codecs import decode_mlflow, decode_oip
from mlbox.serving.tensors import conform, jsonable, to_outputs
from mlbox.store.errors import InvalidInput
from tests.serving.server import oip


def test_codecs_keep_types_honest() -> None:
    named = decode_oip(json.dumps(oip([[1, 2]], datatype="INT32")).encode()).payload.value
    assert named["input"].dtype == np.int32
    rows = decode_mlflow(b'{"instances": [[3, "red"], [4, "blue"]]}')
    from mlbox.registry.signature import ColumnSpec, Schema

    schema = Schema("columns", columns=[ColumnSpec("n", "int64"), ColumnSpec("colour", "string")])
    inputs, n = conform(schema, rows)
    assert n == 2 and inputs["n"].tolist() == [3, 4] and inputs["colour"].tolist() == ["red", "blue"]
    assert jsonable(np.array(["a", "b"], dtype=object)) == ("BYTES", ["a", "b"])
    assert jsonable(np.array([1, 2], dtype=object)) == ("INT64", [1, 2])
    assert jsonable(np.array([b"x"])) == ("BYTES", ["x"])
    frame = pd.DataFrame({"a": [1.0], "b": [2]})
    assert list(to_outputs(frame, "out")) == ["a", "b"]
    assert list(to_outputs((np.ones(1), np.zeros(1)), "out")) == ["output_0", "output_1"]
    assert list(to_outputs([1, 2], "out")) == ["out"]


def test_binary_bytes_tensors_decode() -> None:
    items = [b"ab", b"", "é".encode()]
    blob = b"".join(struct.pack("<I", len(v)) + v for v in items)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "shape": [3],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    ).encode()
    value = decode_oip(header + blob, len(header)).payload.value["s"]
    assert value.tolist() == ["ab", "", "é"]
    with pytest.raises(InvalidInput):
        decode_oip(header + blob[:-1], len(header))
