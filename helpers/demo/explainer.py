"""The real models behind the card actions: a `Storyteller` for narratives, LayerCAM and occlusion maps.

Loaded once with the demo's models (`models.load_models`); every method works on one picture, on demand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers import saliency
from helpers.caption.narrative import Narrative, Ranked
from helpers.caption.storyteller import StoryConfig, Storyteller

#: Occlusion grid over the picture: grid x grid cells, each greyed out in turn (grid**2 + 1 encodes).
OCCLUSION_GRID = 4


class ModelExplainer:
    """Narratives from the captioner; where the classifier (LayerCAM) and the caption (occlusion) looked."""

    def __init__(
        self,
        captioner: Any,
        classifier: Any,
        classifier_config: dict[str, Any],
        story: StoryConfig | None = None,
    ):
        self.storyteller = Storyteller(captioner, story)
        self.captioner, self.classifier, self.config = captioner, classifier, classifier_config
        self.grid = self.storyteller.cfg.grid

    def more(self, image: np.ndarray, narrative: Narrative) -> tuple[Narrative, Ranked | None]:
        return self.storyteller.more(image, narrative)

    def look_here(self, image: np.ndarray, narrative: Narrative, row: int, col: int) -> Narrative:
        return self.storyteller.look_here(image, narrative, row, col)

    def classifier_map(self, image: np.ndarray) -> tuple[np.ndarray, str]:
        """LayerCAM heatmap of the top-1 class, and that class's name."""
        heat, index, _layer = saliency.classifier_cam(self.classifier, self.config, image)
        return heat, str(self.config["label_names"][index])

    def caption_map(self, image: np.ndarray, caption: str) -> np.ndarray:
        """(grid, grid) drop of the caption's log-likelihood when each cell is greyed out, nats."""
        return saliency.occlusion_map(saliency.caption_score(self.captioner, caption), image, OCCLUSION_GRID)
