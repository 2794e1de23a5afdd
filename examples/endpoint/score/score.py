"""Scores the nearest-centroid iris model that examples/tutorial/src/train.py writes (model.json).

Azure ML's contract: init() once, run(raw_data) per request. AZUREML_MODEL_DIR is the parent of
the registered model's folder, so the model file is found beneath it."""

import glob
import json
import os

model = None


def init():
    global model
    found = glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "**", "model.json"), recursive=True)
    with open(found[0]) as fh:
        model = json.load(fh)
    print("loaded", found[0], "classes:", sorted(model["centroids"]))


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    centroids = model["centroids"]

    def nearest(x):
        return min(centroids, key=lambda c: sum((a - b) ** 2 for a, b in zip(x, centroids[c])))

    return [nearest(row) for row in rows]
