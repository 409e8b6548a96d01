"""Serving an ONNX-exported model: ONNX Runtime answers when the run holds a checked
`model.onnx` (the meta contract of training), the native model otherwise, and the deployment
and Open Inference metadata say which. A missing or corrupt `model.onnx` falls back to the
native model (it gives the same answers) and says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlteam import Client
from mlteam.client.bridge import SyncBridge
from tests.conftest import uid


def _export(model, features: list[str]) -> bytes:
    """The contract's ONNX graph: one float [None, 1] input per feature, label first,
    probabilities as a plain tensor (zipmap off)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    types = [(f"f{i}", FloatTensorType([None, 1])) for i in range(len(features))]
    onx = convert_sklearn(
        model, initial_types=types, options={LogisticRegression: {"zipmap": False}}
    )
    return onx.SerializeToString()


def _meta(features: list[str], onnx: bool) -> dict:
    sig = {
        "inputs": [{"name": f, "type": "double"} for f in features],
        "output": {"name": "target", "type": "long", "classes": [0, 1]},
        "task": "classification",
    }
    meta: dict = {"format": "sklearn-skops", "signature": sig, "target": "target"}
    if onnx:
        meta["onnx"] = {
            "file": "model.onnx",
            "max_abs_diff": 0.0,
            "rows_checked": 569,
            "inputs": [
                {"name": f"f{i}", "feature": f, "type": "float"} for i, f in enumerate(features)
            ],
            "outputs": {"label": "label", "probabilities": "probabilities"},
        }
    else:
        meta["onnx"] = None
        meta["onnx_note"] = "not exported (test)"
    return meta


@pytest.fixture(scope="module")
def onnx_srv(admin: Client, cancer_csv: Path, app, tmp_path_factory) -> dict:
    """Versions of `lr`: v1 exported to ONNX; v2 the same with a corrupt model.onnx; v3 with
    the meta naming a model.onnx that is missing; v4 whose model.onnx is deliberately another
    model (fitted on flipped labels), so an answer shows which runtime gave it."""
    import onnxruntime as ort
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = pd.read_csv(cancer_csv)
    frame, y = data.drop(columns="target"), data["target"]
    features = list(frame.columns)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame, y)
    flipped = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame, 1 - y)
    graph, flipped_graph = _export(model, features), _export(flipped, features)
    # the export check training makes before it writes model.onnx: same labels on every row
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    feeds = {f"f{i}": frame[f].to_numpy(np.float32).reshape(-1, 1) for i, f in enumerate(features)}
    assert (sess.run(["label"], feeds)[0] == model.predict(frame)).all()

    slug = uid("onnx")
    admin.create_project(slug)
    folder = tmp_path_factory.mktemp("onnx-model")
    sio.dump(model, folder / "model.skops")
    sio.dump(flipped, folder / "flipped.skops")

    def version(onnx: bytes | None, meta_onnx: bool = True, skops: str = "model.skops") -> None:
        (folder / "mlteam-model.json").write_text(json.dumps(_meta(features, meta_onnx)))
        run = admin.create_run(slug, "onnx")
        admin.log_artifact(run["id"], folder / skops, "model/model.skops")
        admin.log_artifact(run["id"], folder / "mlteam-model.json", "model/mlteam-model.json")
        if onnx is not None:
            (folder / "model.onnx").write_bytes(onnx)
            admin.log_artifact(run["id"], folder / "model.onnx", "model/model.onnx")
        admin.finish_run(run["id"])
        admin.register(slug, "lr", run["id"])

    version(graph)  # v1
    version(b"this is not an ONNX graph")  # v2
    version(None)  # v3: meta says model.onnx, the file is missing
    version(flipped_graph)  # v4: the graph is another model than model.skops
    version(graph, meta_onnx=False)  # v5: not exported (onnx null) although a file lies there
    token = admin._http.headers["Authorization"]
    raw = httpx.Client(
        base_url="http://testserver",
        transport=SyncBridge(httpx.ASGITransport(app)),
        headers={"Authorization": token},
    )
    yield {
        "slug": slug,
        "frame": frame,
        "model": model,
        "flipped": flipped,
        "raw": raw,
        "features": features,
    }
    raw.close()


def _deploy(admin: Client, srv: dict, version: int) -> str:
    name = uid("onnxdep")
    admin.deploy(srv["slug"], name, "lr", version)
    return name


def _answers(admin: Client, srv: dict, name: str, frame: pd.DataFrame) -> dict[str, list]:
    """The same rows through the native protocol, MLflow invocations (rows, so the all-numbers
    fast path) and Open Inference per-column tensors."""
    rows = frame.to_dict(orient="records")
    native = [p["output"] for p in admin.predict(name, rows)["predictions"]]
    split = {"columns": list(frame.columns), "data": frame.values.tolist()}
    inv = srv["raw"].post(
        f"/api/v1/deployments/{name}/invocations", json={"dataframe_split": split}
    )
    assert inv.status_code == 200, inv.text
    tensors = [
        {"name": c, "datatype": "FP64", "shape": [len(frame)], "data": frame[c].tolist()}
        for c in frame.columns
    ]
    oip = srv["raw"].post(f"/v2/models/{name}/infer", json={"inputs": tensors})
    assert oip.status_code == 200, oip.text
    return {
        "native": native,
        "mlflow": inv.json()["predictions"],
        "oip": oip.json()["outputs"][0]["data"],
    }


def _runtime(admin: Client, srv: dict, name: str) -> tuple[str, str, str | None]:
    route = admin.deployment(name)["routes"][0]
    platform = srv["raw"].get(f"/v2/models/{name}").json()["platform"]
    return route["runtime"], platform, route["runtime_note"]


def test_an_exported_model_is_served_by_onnx_runtime_with_the_same_answers(
    admin: Client, onnx_srv: dict
) -> None:
    name = _deploy(admin, onnx_srv, 1)
    assert _runtime(admin, onnx_srv, name) == ("onnxruntime", "onnxruntime", None)
    frame = onnx_srv["frame"]
    expected = onnx_srv["model"].predict(frame).tolist()
    # single-digit rows (per value, one thread) and 569 (numpy, the several-thread session)
    for few in (frame.head(3), frame):
        got = _answers(admin, onnx_srv, name, few)
        assert got == {k: expected[: len(few)] for k in got}


def test_the_answers_come_from_the_onnx_graph(admin: Client, onnx_srv: dict) -> None:
    # v4's graph is the flipped model: its answers, not model.skops's, come back
    name = _deploy(admin, onnx_srv, 4)
    assert _runtime(admin, onnx_srv, name)[0] == "onnxruntime"
    frame = onnx_srv["frame"].head(40)
    got = _answers(admin, onnx_srv, name, frame)
    flipped = onnx_srv["flipped"].predict(frame).tolist()
    assert got["native"] == got["mlflow"] == got["oip"] == flipped
    assert flipped != onnx_srv["model"].predict(frame).tolist()


@pytest.mark.parametrize(
    ("version", "says"), [(2, "model.onnx"), (3, "model.onnx"), (5, "not exported")]
)
def test_a_missing_or_corrupt_onnx_file_falls_back_to_the_native_model(
    admin: Client, onnx_srv: dict, version: int, says: str
) -> None:
    name = _deploy(admin, onnx_srv, version)
    runtime, platform, note = _runtime(admin, onnx_srv, name)
    assert (runtime, platform) == ("sklearn", "sklearn")
    assert note and says in note
    frame = onnx_srv["frame"].head(30)
    got = _answers(admin, onnx_srv, name, frame)
    expected = onnx_srv["model"].predict(frame).tolist()
    assert got == {k: expected for k in got}
