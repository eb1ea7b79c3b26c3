"""The example models by name (what ``graph-router models serve --models`` picks from)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .abtest import ModelA, ModelB
from .animals import AnimalDetector, BirdBreed, CatBreed, DogBreed, GenericBreed
from .iris import (
    Classifier,
    FeatureTransformer,
    LightGBMIris,
    Postprocessor,
    Preprocessor,
    ResultFormatter,
    SklearnIris,
    XGBoostIris,
)
from .model import Model
from .v2 import V2Classifier, V2Scaler

_FACTORIES: tuple[Callable[[], Model], ...] = (
    SklearnIris,
    XGBoostIris,
    LightGBMIris,
    Preprocessor,
    Classifier,
    Postprocessor,
    FeatureTransformer,
    ResultFormatter,
    AnimalDetector,
    DogBreed,
    CatBreed,
    BirdBreed,
    GenericBreed,
    ModelA,
    ModelB,
    V2Scaler,
    V2Classifier,
)
EXAMPLE_MODELS: dict[str, Callable[[], Model]] = {f().served_name: f for f in _FACTORIES}


def example_models(names: Iterable[str] | None = None) -> list[Model]:
    """Fresh instances of the named example models (all of them when ``names`` is None)."""
    chosen = list(EXAMPLE_MODELS) if names is None else list(names)
    unknown = [n for n in chosen if n not in EXAMPLE_MODELS]
    if unknown:
        raise KeyError(f"unknown example model(s): {', '.join(unknown)}; known: {', '.join(EXAMPLE_MODELS)}")
    return [EXAMPLE_MODELS[n]() for n in chosen]
