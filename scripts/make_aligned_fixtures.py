#!/usr/bin/env python3
"""Generate the pickle fixtures of `crates/mmfuse-data/tests/fixtures/aligned/`.

Tiny MAG-BERT-style and MMSA-style pickles (a few samples each) written with the real
libraries (`pickle`, numpy), plus `expected.json` with every value the Rust readers must
produce. The Rust tests (`crates/mmfuse-data/tests/aligned.rs` and the unit tests of
`pickle.rs`) read only the committed files: CI does not need Python.

Files written:
- `mag_p2.pkl`, `mag_p4.pkl`, `mag_p5.pkl`: the same MAG-BERT dict (`train`/`dev`/`test`, items
  `((words, visual, acoustic), label, segment)`) with pickle protocols 2, 4 and 5 (protocol 5
  stores arrays through `numpy._core.numeric._frombuffer`). Words are a list of str, a `<U`
  array or an object array; visual is float32 (one Fortran-ordered), acoustic float64 with a NaN
  and a -inf; labels are a float32 `[[x]]` array, a Python float, numpy float64/float32 scalars
  and a float64 `[[x]]` array.
- `mmsa.pkl` (protocol 4): MMSA-style dict `train`/`valid`/`test` of arrays (`text_bert` as
  float64 [N, 3, L], `audio` [N, L, A], `vision` [N, L, V], `regression_labels`, `id`,
  `raw_text`, `audio_lengths`, `vision_lengths`, plus unused keys).
- `dtypes.pkl` (protocol 2) and `dtypes_p5.pkl` (protocol 5): one array per dtype / layout
  (float32/64, int8/16/32/64, uint8/16/32, bool, `<U`, object, Fortran order, big-endian, numpy
  scalars, a 0-d array, an empty array).
- `evil.pkl`: `os.system('touch …')` as a pickle (never executed by the reader) and
  `mag_evil.pkl`: the same object as the only item of a MAG-BERT-like dict.
- `expected.json`: `mag` (per split: id, words, label, steps, audio, video, flattened, non-finite
  values replaced by 0, plus `non_finite`, `audio_dim`, `video_dim`), `mmsa` (same plus
  `token_ids`) and `dtypes` (per key: dtype, shape, values in C order).

Usage: python3 scripts/make_aligned_fixtures.py [--out DIR]   (numpy)
"""

import argparse
import json
import os
import pickle

import numpy as np

A, V = 3, 4


def mag_data(rng):
    specs = {
        "train": [
            (["this", "movie", "is", "unbelievablyyy", "good"], "list"),
            (["i", "did", "n't", "like", "it"], "U"),
            (["café", "was", "okay"], "O"),
        ],
        "dev": [(["bad"], "list"), (["so", "so", "plot"], "U")],
        "test": [(["George", "Zimmerman", "is", "here"], "list"), (["meh", "really"], "O")],
    }
    labels = {
        "train": [np.array([[1.6]], dtype=np.float32), 0.0, np.float64(-2.333333333)],
        "dev": [np.float32(-0.6666667), np.array([[3.0]], dtype=np.float64)],
        "test": [np.array([[-1.4]], dtype=np.float32), 2.2],
    }
    data, expected, non_finite = {}, {}, 0
    for split, items in specs.items():
        data[split], expected[split] = [], []
        for i, (words, kind) in enumerate(items):
            n = len(words)
            visual = rng.normal(size=(n, V)).astype(np.float32)
            if split == "train" and i == 1:
                visual = np.asfortranarray(visual)
            acoustic = rng.normal(size=(n, A)).astype(np.float64)
            if split == "train" and i == 0:
                acoustic[1, 2] = np.nan
                non_finite += 1
            if split == "dev" and i == 1:
                acoustic[0, 0] = -np.inf
                acoustic[2, 1] = np.inf
                non_finite += 2
            w = words if kind == "list" else np.array(words, dtype="U" if kind == "U" else object)
            label = labels[split][i]
            seg = f"{split}_vid{i}_{i + 1}"
            data[split].append(((w, visual, acoustic), label, seg))
            clean = np.nan_to_num(acoustic, nan=0.0, posinf=0.0, neginf=0.0)
            expected[split].append(
                {
                    "id": seg,
                    "words": words,
                    "label": float(np.float32(np.asarray(label).item())),
                    "steps": n,
                    "audio": [float(x) for x in clean.astype(np.float32).ravel()],
                    "video": [float(x) for x in visual.ravel()],
                }
            )
    return data, {"splits": expected, "non_finite": non_finite, "audio_dim": A, "video_dim": V}


def mmsa_data(rng):
    L = 8
    sizes = {"train": 3, "valid": 2, "test": 1}
    texts = ["it was great", "not my thing at all", "fine", "terrible ending", "a b c d e f", "ok then"]
    data, expected, k = {}, {}, 0
    for split, n in sizes.items():
        tb = np.zeros((n, 3, L), dtype=np.float64)
        audio = rng.normal(size=(n, L, A)).astype(np.float32)
        vision = rng.normal(size=(n, L, V)).astype(np.float32)
        labels = rng.uniform(-3, 3, size=n).astype(np.float32)
        ids, raws, exp = [], [], []
        for j in range(n):
            text = texts[k]
            k += 1
            words = text.split()
            length = min(len(words) + 2, L)
            toks = [101] + [1000 + 7 * k + t for t in range(length - 2)] + [102]
            tb[j, 0, :length] = toks
            tb[j, 1, :length] = 1
            vid = f"{split}$_${j}"
            ids.append(vid)
            raws.append(text)
            exp.append(
                {
                    "id": vid,
                    "words": words,
                    "token_ids": toks,
                    "label": float(labels[j]),
                    "steps": length,
                    "audio": [float(x) for x in audio[j, :length].ravel()],
                    "video": [float(x) for x in vision[j, :length].ravel()],
                }
            )
        data[split] = {
            "raw_text": np.array(raws, dtype=object),
            "audio": audio,
            "vision": vision,
            "id": np.array(ids, dtype=object) if split != "test" else ids,
            "text": rng.normal(size=(n, L, 2)).astype(np.float32),
            "text_bert": tb,
            "audio_lengths": [L] * n,
            "vision_lengths": np.array([L] * n, dtype=np.int64),
            "annotations": np.array(["Positive"] * n, dtype=object),
            "classification_labels": np.zeros(n, dtype=np.float32),
            "regression_labels": labels,
        }
        expected["dev" if split == "valid" else split] = exp
    return data, {"splits": expected, "audio_dim": A, "video_dim": V}


def dtypes_data():
    d = {
        "f4": np.array([[1.5, -2.25, 3.0], [0.1, 1e-8, -7.0]], dtype=np.float32),
        "f8": np.array([1.0 / 3.0, -1e300, 2.5], dtype=np.float64),
        "i1": np.array([-128, 127, 0], dtype=np.int8),
        "i2": np.array([-300, 300], dtype=np.int16),
        "i4": np.array([[1, -2], [2147483647, -2147483648]], dtype=np.int32),
        "i8": np.array([2**40, -(2**40), 5], dtype=np.int64),
        "u1": np.array([0, 255, 7], dtype=np.uint8),
        "u2": np.array([65535, 1], dtype=np.uint16),
        "u4": np.array([4000000000], dtype=np.uint32),
        "b1": np.array([True, False, True]),
        "U": np.array([["ab", "c"], ["dé", "xyz"]]),
        "O": np.array(["word", "other"], dtype=object),
        "fortran": np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4) * 0.5),
        "fortran_i4": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        "be_f4": np.array([1.5, -2.0], dtype=">f4"),
        "be_i8": np.array([[1, -2]], dtype=">i8"),
        "scalar_f4": np.float32(1.25),
        "scalar_f8": np.float64(-0.1),
        "scalar_i8": np.int64(-7),
        "zero_d": np.array(3.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    exp = {}
    for k, v in d.items():
        a = np.asarray(v)
        kind = {"U": "<U", "O": "object"}.get(a.dtype.kind, a.dtype.newbyteorder("=").name)
        vals = a.ravel(order="C").tolist()
        exp[k] = {"dtype": kind, "shape": list(a.shape), "values": vals}
    return d, exp


class Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def evil_bytes(obj):
    b = pickle.dumps(obj, protocol=2)
    return b.replace(b"cposix\nsystem\n", b"cos\nsystem\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../crates/mmfuse-data/tests/fixtures/aligned"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240607)
    mag, mag_exp = mag_data(rng)
    for proto in (2, 4, 5):
        with open(os.path.join(out, f"mag_p{proto}.pkl"), "wb") as f:
            pickle.dump(mag, f, protocol=proto)
    mmsa, mmsa_exp = mmsa_data(rng)
    with open(os.path.join(out, "mmsa.pkl"), "wb") as f:
        pickle.dump(mmsa, f, protocol=4)
    dt, dt_exp = dtypes_data()
    with open(os.path.join(out, "dtypes.pkl"), "wb") as f:
        pickle.dump(dt, f, protocol=2)
    with open(os.path.join(out, "dtypes_p5.pkl"), "wb") as f:
        pickle.dump(dt, f, protocol=5)
    cmd = "touch /tmp/mmfuse-pickle-was-executed"
    with open(os.path.join(out, "evil.pkl"), "wb") as f:
        f.write(evil_bytes(Evil(cmd)))
    with open(os.path.join(out, "mag_evil.pkl"), "wb") as f:
        f.write(evil_bytes({"train": [Evil(cmd)], "dev": [], "test": []}))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"mag": mag_exp, "mmsa": mmsa_exp, "dtypes": dt_exp, "evil_command": cmd}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    # sanity: the fixtures load back in Python
    for name in ("mag_p2.pkl", "mag_p4.pkl", "mag_p5.pkl", "mmsa.pkl", "dtypes.pkl", "dtypes_p5.pkl"):
        with open(os.path.join(out, name), "rb") as f:
            pickle.load(f)


if __name__ == "__main__":
    main()
