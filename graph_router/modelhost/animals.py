"""Toy animal models: a nearest-centroid detector and per-animal breed models behind a Switch.

The detector's instance is either a feature vector ``[body_mass_kg, ear_length_cm,
wingspan_cm, whisker_length_cm]`` or ``{"image": "<any string>"}``; an image is turned into a
feature vector by hashing its text (deterministic, no real vision).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from .model import InvalidInput, Model, number_rows

ANIMALS = ("dog", "cat", "bird")
CENTROIDS = ((20.0, 10.0, 0.0, 3.0), (4.0, 6.0, 0.0, 7.0), (0.3, 1.0, 25.0, 0.0))
SCALE = (10.0, 4.0, 10.0, 3.0)
#: Farther than this (in scaled units) from every centroid: ``other``.
OTHER_DISTANCE = 1.5
#: Where hashed images land besides the three centroids (a horse-sized animal: ``other``).
FAR_POINT = (300.0, 15.0, 0.0, 0.0)


def image_features(image: str) -> list[float]:
    """A feature vector from the text of an image: a centroid picked by the hash, plus jitter."""
    digest = hashlib.sha256(image.encode()).digest()
    base = (*CENTROIDS, FAR_POINT)[digest[0] % 4]
    jitter = [digest[i] / 255 - 0.5 for i in range(1, 5)]
    return [round(b + j * s, 2) for b, j, s in zip(base, jitter, SCALE, strict=True)]


def detect(row: list[float]) -> dict[str, Any]:
    distances = [
        math.sqrt(sum(((x - c) / s) ** 2 for x, c, s in zip(row, centroid, SCALE, strict=True)))
        for centroid in CENTROIDS
    ]
    nearest = min(range(len(ANIMALS)), key=distances.__getitem__)
    if distances[nearest] > OTHER_DISTANCE:
        return {"label": "other", "score": round(1 - OTHER_DISTANCE / distances[nearest], 2)}
    # Confidence falls off with the distance to the centroid: 1.0 on it, ~0.47 at the border.
    return {"label": ANIMALS[nearest], "score": round(math.exp(-distances[nearest] / 2), 2)}


class AnimalDetector(Model):
    """Feature vector or ``{"image": ...}`` -> ``{"label": "dog"|"cat"|"bird"|"other", "score": s}``."""

    name = "animal-detector"

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        rows: list[list[float]] = []
        for i, instance in enumerate(instances):
            if isinstance(instance, dict):
                image = instance.get("image")
                if not isinstance(image, str) or not image:
                    raise InvalidInput(f'instances[{i}]: expected {{"image": "<string>"}} or 4 numbers')
                rows.append(image_features(image))
            else:
                rows.extend(number_rows([instance], 4))
        return [detect(row) for row in rows]


class BreedModel(Model):
    """Names a breed for each detection of its animal (by the detector's score); others get null.

    Takes the detector's answer as is (``{"predictions": [...]}``, as a Switch passes it on) or
    the same records under ``instances``.
    """

    accepts_predictions = True
    animal: ClassVar[str] = ""
    #: (minimum score, breed), best first.
    breeds: ClassVar[tuple[tuple[float, str], ...]] = ()

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        return [self._breed(item, f"instances[{i}]") for i, item in enumerate(instances)]

    def _breed(self, item: Any, where: str) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise InvalidInput(f'{where}: expected a detection {{"label": ..., "score": ...}}')
        label, score = item["label"], item.get("score", 0.0)
        if not isinstance(score, int | float) or isinstance(score, bool):
            raise InvalidInput(f"{where}: 'score' must be a number")
        breed = None
        if label == self.animal or not self.animal:
            breed = next((name for low, name in self.breeds if score >= low), None)
        return {"animal": label, "breed": breed, "score": score}


class DogBreed(BreedModel):
    """Dog detections -> breed (labrador/beagle/mixed by score); other animals -> null."""

    name = "dog-breed"
    animal = "dog"
    breeds = ((0.9, "labrador"), (0.7, "beagle"), (0.0, "mixed"))


class CatBreed(BreedModel):
    """Cat detections -> breed (siamese/tabby/mixed by score); other animals -> null."""

    name = "cat-breed"
    animal = "cat"
    breeds = ((0.9, "siamese"), (0.7, "tabby"), (0.0, "mixed"))


class BirdBreed(BreedModel):
    """Bird detections -> breed (robin/sparrow/mixed by score); other animals -> null."""

    name = "bird-breed"
    animal = "bird"
    breeds = ((0.9, "robin"), (0.7, "sparrow"), (0.0, "mixed"))


class GenericBreed(BreedModel):
    """The catch-all: any animal, breed ``unknown``."""

    name = "generic-breed"
    breeds = ((-math.inf, "unknown"),)
