"""Write calib_1x8.npz and calib_1x16.npz, the calibration samples of the lit tests.

    .venv/bin/python lit_tests/Inputs/make_calib.py     # rewrites the file next to this script

One array `x`: float32 [4, 8], four samples of an 8-value input such as [1, 8] or
[1, 1, 2, 4] (quantize reshapes each sample to the compiled input shape); calib_1x16.npz
holds the same values as [2, 16], two samples of a 16-value input such as [1, 1, 4, 4];
calib_1x2.npz as [16, 2], sixteen samples of a [1, 2] input. The values are exact in float32 and
chosen for easy arithmetic in the CHECK lines:
- max|x| over all samples is 1.27, so the per-tensor input scale is 1.27 / 127 = 0.01;
The zip entries get a fixed timestamp, so a rerun writes byte-identical output.
"""

import io
import zipfile
from pathlib import Path

import numpy as np

X = np.array(
    [
        [1.27, -0.5, 0.25, 0.0, 1.0, -1.0, 0.5, 0.75],
        [0.5, 1.0, -0.25, 0.5, 0.0, 0.25, -0.75, 1.0],
        [-1.0, 0.25, 1.0, -0.5, 0.75, 0.5, 0.0, -0.25],
        [0.25, -0.75, 0.5, 1.0, -0.5, 0.0, 1.0, 0.5],
    ],
    dtype=np.float32,
)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


if __name__ == "__main__":
    for name, array in (("calib_1x8.npz", X), ("calib_1x16.npz", X.reshape(2, 16)), ("calib_1x2.npz", X.reshape(16, 2))):
        out = Path(__file__).with_name(name)
        write_npz(out, x=array)
        print(f"wrote {out} ({out.stat().st_size} bytes)")
