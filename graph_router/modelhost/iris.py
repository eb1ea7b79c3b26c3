"""Iris models with fixed parameters: three classifier styles and a pre/post-processing chain.

Features are ``[sepal_length, sepal_width, petal_length, petal_width]`` in cm; classes are
0 setosa, 1 versicolor, 2 virginica. The parameters were fitted once on the iris data set
(about 96% accurate each) and frozen here; the three classifiers disagree on a few hard rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .model import InvalidInput, Model, argmax, flag, number_rows, softmax

CLASSES = ("setosa", "versicolor", "virginica")
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")

#: Standardisation used by ``preprocessor`` and ``v2-scaler`` (iris mean and std per feature).
MEAN = (5.8433, 3.054, 3.7587, 1.1987)
STD = (0.8253, 0.4321, 1.7585, 0.7606)

# Multinomial logistic regression on raw features (sklearn-iris).
RAW_WEIGHTS = ((-0.98, 1.94, -0.76, -1.64), (0.42, -0.92, -0.05, -0.67), (0.57, -1.02, 0.8, 2.31))
RAW_BIAS = (4.35, 2.71, -7.06)
# The same regression fitted on standardised features (classifier, v2-classifier).
STD_WEIGHTS = ((-0.81, 0.84, -1.33, -1.25), (0.34, -0.4, -0.09, -0.51), (0.47, -0.44, 1.42, 1.76))
STD_BIAS = (-0.28, 1.35, -1.06)

#: A decision stump: (class, feature index, threshold, score if below, score if at or above).
Stump = tuple[int, int, float, float, float]

XGBOOST_STUMPS: tuple[Stump, ...] = (
    (0, 2, 2.45, 1.2, -0.6),
    (0, 3, 0.8, 0.8, -0.4),
    (1, 2, 2.45, -0.6, 0.5),
    (1, 3, 1.75, 0.7, -0.6),
    (1, 2, 4.95, 0.4, -0.5),
    (2, 3, 1.75, -0.6, 0.8),
    (2, 2, 4.85, -0.5, 0.5),
    (2, 0, 6.95, 0.0, 0.3),
)
LIGHTGBM_STUMPS: tuple[Stump, ...] = (
    (0, 3, 0.75, 1.5, -0.7),
    (0, 0, 5.45, 0.3, -0.2),
    (1, 3, 0.75, -0.9, 0.3),
    (1, 3, 1.65, 0.6, -0.7),
    (1, 2, 5.05, 0.3, -0.6),
    (1, 1, 2.25, -0.2, 0.1),
    (2, 3, 1.65, -0.7, 0.7),
    (2, 2, 5.05, -0.4, 0.6),
    (2, 1, 2.25, 0.2, 0.0),
)


def linear_scores(row: Sequence[float], weights: Sequence[Sequence[float]], bias: Sequence[float]) -> list[float]:
    return [sum(w * x for w, x in zip(ws, row, strict=True)) + b for ws, b in zip(weights, bias, strict=True)]


def stump_scores(row: Sequence[float], stumps: Sequence[Stump]) -> list[float]:
    scores = [0.0, 0.0, 0.0]
    for cls, feature, threshold, below, above in stumps:
        scores[cls] += below if row[feature] < threshold else above
    return scores


def standardize(row: Sequence[float]) -> list[float]:
    return [round((x - m) / s, 4) for x, m, s in zip(row, MEAN, STD, strict=True)]


class IrisClassifier(Model):
    """Base of the iris classifiers: class index per row, or probabilities with
    ``"parameters": {"probabilities": true}``."""

    inputs_are_standardized = False

    def scores(self, row: Sequence[float]) -> list[float]:
        raise NotImplementedError

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        rows = number_rows(instances, 4)
        if flag(parameters, "probabilities"):
            return [softmax(self.scores(row)) for row in rows]
        return [argmax(self.scores(row)) for row in rows]


class SklearnIris(IrisClassifier):
    """Logistic regression over the raw features."""

    name = "sklearn-iris"

    def scores(self, row: Sequence[float]) -> list[float]:
        return linear_scores(row, RAW_WEIGHTS, RAW_BIAS)


class XGBoostIris(IrisClassifier):
    """Boosted decision stumps summed per class."""

    name = "xgboost-iris"

    def scores(self, row: Sequence[float]) -> list[float]:
        return stump_scores(row, XGBOOST_STUMPS)


class LightGBMIris(IrisClassifier):
    """Different stumps (other features and thresholds)."""

    name = "lightgbm-iris"

    def scores(self, row: Sequence[float]) -> list[float]:
        return stump_scores(row, LIGHTGBM_STUMPS)


class Classifier(IrisClassifier):
    """The logistic regression over standardised features (what ``preprocessor`` outputs)."""

    name = "classifier"

    def scores(self, row: Sequence[float]) -> list[float]:
        return linear_scores(row, STD_WEIGHTS, STD_BIAS)


class Preprocessor(Model):
    """Standardises raw iris rows: ``(x - mean) / std`` per feature, 4 decimals."""

    name = "preprocessor"

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        return [standardize(row) for row in number_rows(instances, 4)]


def class_index(value: Any, where: str) -> int:
    """A class index, or the argmax of a probability list."""
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) for v in value):
        return argmax([float(v) for v in value])
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(CLASSES):
        return value
    raise InvalidInput(f"{where}: expected a class index 0-2 or 3 probabilities, got {value!r}")


class Postprocessor(Model):
    """Class index (or probabilities) -> ``{"class": "setosa", "label": 0}``."""

    name = "postprocessor"

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        labels = [class_index(v, f"instances[{i}]") for i, v in enumerate(instances)]
        return [{"class": CLASSES[label], "label": label} for label in labels]


UNITS = {"cm": 1.0, "mm": 0.1, "in": 2.54}


class FeatureTransformer(Model):
    """Named measurements (``{"sepal_length": 51, ..., "unit": "mm"}``) -> feature rows in cm."""

    name = "feature-transformer"

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        return [self._row(obj, f"instances[{i}]") for i, obj in enumerate(instances)]

    @staticmethod
    def _row(obj: Any, where: str) -> list[float]:
        if not isinstance(obj, dict):
            raise InvalidInput(f"{where}: expected an object with {', '.join(FEATURES)}")
        unit = obj.get("unit", "cm")
        if unit not in UNITS:
            raise InvalidInput(f"{where}: unknown unit {unit!r} (cm, mm or in)")
        row: list[float] = []
        for feature in FEATURES:
            value = obj.get(feature)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidInput(f"{where}: missing or non-numeric {feature!r}")
            row.append(round(value * UNITS[unit], 4))
        return row


class ResultFormatter(Model):
    """Class indices -> species records plus a count per species."""

    name = "result-formatter"

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        labels = [class_index(v, f"instances[{i}]") for i, v in enumerate(instances)]
        return [{"species": f"Iris-{CLASSES[label]}", "label": label} for label in labels]

    def respond(self, predictions: list[Any], body: Mapping[str, Any]) -> dict[str, Any]:
        summary = {name: 0 for name in CLASSES}
        for record in predictions:
            summary[CLASSES[record["label"]]] += 1
        return {"predictions": predictions, "summary": summary}
