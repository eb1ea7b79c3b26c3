"""Two versions of a sentiment model for A/B tests: same task, different lexicons and thresholds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from .model import InvalidInput, Model

_WORD = re.compile(r"[a-z']+")


class SentimentModel(Model):
    """Instance: a text (or ``{"text": ...}``) -> ``{"sentiment": ..., "score": s}``; the answer
    also says which model answered (``"model": "model-a"``)."""

    positive: ClassVar[dict[str, float]] = {}
    negative: ClassVar[dict[str, float]] = {}
    #: |score| below this is ``neutral``.
    neutral_band: ClassVar[float] = 0.0
    exclamation_boost: ClassVar[float] = 0.0

    def predict(self, instances: list[Any], parameters: Mapping[str, Any]) -> list[Any]:
        return [self._score(self._text(item, i)) for i, item in enumerate(instances)]

    def respond(self, predictions: list[Any], body: Mapping[str, Any]) -> dict[str, Any]:
        return {"predictions": predictions, "model": self.served_name}

    @staticmethod
    def _text(item: Any, index: int) -> str:
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise InvalidInput(f'instances[{index}]: expected a text or {{"text": "..."}}')
        return text

    def _score(self, text: str) -> dict[str, Any]:
        words = _WORD.findall(text.lower())
        raw = sum(self.positive.get(w, 0.0) - self.negative.get(w, 0.0) for w in words)
        if raw > 0:
            raw += self.exclamation_boost * text.count("!")
        score = round(max(-1.0, min(1.0, raw / max(1, len(words)) * 2)), 2)
        sentiment = "positive" if score > 0 else "negative"
        if abs(score) <= self.neutral_band:
            sentiment = "neutral"
        return {"sentiment": sentiment, "score": score}


class ModelA(SentimentModel):
    """The current model: a small lexicon, any non-zero score decides."""

    name = "model-a"
    positive = {"good": 1.0, "great": 1.0, "love": 1.0, "excellent": 1.0, "happy": 1.0}
    negative = {"bad": 1.0, "terrible": 1.0, "hate": 1.0, "awful": 1.0, "sad": 1.0}


class ModelB(SentimentModel):
    """The challenger: a larger weighted lexicon, exclamation marks count, a neutral band."""

    name = "model-b"
    positive = {
        "good": 0.8,
        "great": 1.2,
        "love": 1.5,
        "excellent": 1.5,
        "happy": 1.0,
        "fine": 0.4,
        "fast": 0.6,
    }
    negative = {"bad": 1.0, "terrible": 1.5, "hate": 1.5, "awful": 1.5, "sad": 0.8, "slow": 0.7, "but": 0.3}
    neutral_band = 0.15
    exclamation_boost = 0.5
