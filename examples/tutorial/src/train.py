"""A small real training script: a nearest-centroid classifier on the iris table, tracked with MLflow.

Inside a Shoal (or Azure ML) job, MLflow needs no set-up: the tracking URI and the run are the
job's, so ``mlflow.log_*`` lands in the job. Run outside a job it logs wherever MLFLOW_TRACKING_URI points.
"""

import argparse
import csv
import json
import pathlib
import random

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="a folder with iris.csv (the iris MLTable)")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--lr", type=float, default=0.5)
parser.add_argument("--out", required=True, help="where the model is written")
args = parser.parse_args()

rows = list(csv.DictReader(open(pathlib.Path(args.data) / "iris.csv")))
features = [k for k in rows[0] if k != "species"]
random.Random(0).shuffle(rows)
split = int(len(rows) * 0.8)
train, test = rows[:split], rows[split:]
classes = sorted({r["species"] for r in rows})


def vec(row):
    return [float(row[k]) for k in features]


def predict(centroids, row):
    x = vec(row)
    return min(classes, key=lambda c: sum((a - b) ** 2 for a, b in zip(x, centroids[c])))


def accuracy(centroids, data):
    return sum(predict(centroids, r) == r["species"] for r in data) / len(data)


mlflow.log_params({"epochs": args.epochs, "lr": args.lr})
centroids = {c: [0.0] * len(features) for c in classes}
for epoch in range(args.epochs):
    for c in classes:  # move each class centroid a step (the learning rate) towards its samples' mean
        samples = [vec(r) for r in train if r["species"] == c]
        mean = [sum(col) / len(samples) for col in zip(*samples)]
        centroids[c] = [m + args.lr * (v - m) for m, v in zip(centroids[c], mean)]
    mlflow.log_metric("train_accuracy", accuracy(centroids, train), step=epoch)
    print(f"epoch {epoch}: train accuracy {accuracy(centroids, train):.3f}")

test_accuracy = accuracy(centroids, test)
mlflow.log_metric("test_accuracy", test_accuracy)
print(f"test accuracy {test_accuracy:.3f}")

out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / "model.json").write_text(json.dumps({"features": features, "centroids": centroids}, indent=2))
