"""Shadow traffic (step extension ``mirror``): copy a share of a step's input to a shadow model.

The shadow's answer is compared with the real one (:mod:`.compare`) and never returned; sending,
bounding and counting copies is :mod:`.dispatch`. See docs/shadow.md.
"""

from __future__ import annotations

from .compare import AGREE, DISAGREE, MISSING_VALUE, Comparison, Verdict, compile_comparison
from .dispatch import SKIPPED, Lane, Mirror, MirrorKey, MirrorObserver, Shadows, Shot, shadow_label

__all__ = ["AGREE", "DISAGREE", "MISSING_VALUE", "SKIPPED", "Comparison", "Lane", "Mirror", "MirrorKey",
           "MirrorObserver", "Shadows", "Shot", "Verdict", "compile_comparison", "shadow_label"]
