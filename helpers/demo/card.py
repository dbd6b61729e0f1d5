"""One result card as widgets: the HTML card plus *Tell me more*, *Reset*, *Show where it looked* and a
grid of cells to pick a region (*Look here*). Each control calls a pure callback of `explore` and redraws.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from helpers.caption.narrative import grid_cells, position_phrase
from helpers.demo import explore
from helpers.demo.core import DemoModels, Result
from helpers.demo.render import card_html

_CELL_PX = 26  # side of one region button, pixels


class CardView:
    """A card whose narrative grows and whose overlay switches; `widget` is what the app shows."""

    def __init__(self, result: Result, models: DemoModels, busy: Callable[[bool], None] | None = None):
        self.result, self.models = result, models
        self._busy = busy or (lambda _on: None)
        self.html = widgets.HTML(value=card_html(result))
        if not result.ok or models.explainer is None:
            self.widget = widgets.VBox([self.html])
            return
        self.more = self._button("Tell me more", "demo-more", "Add a sentence that says something new")
        self.reset = self._button("Reset", "demo-reset", "Back to the caption alone")
        self.where = widgets.ToggleButtons(
            options=[("off", "off"), ("classifier", "classifier"), ("caption", "caption")],
            value="off",
            description="Show where it looked",
            style={"description_width": "initial", "button_width": "78px"},
        )
        self.where.add_class("demo-where")
        self.more.on_click(lambda _b: self._act(lambda r: explore.tell_more(r, self.models)))
        self.reset.on_click(lambda _b: self._on_reset())
        self.where.observe(self._on_where, names="value")
        self.cells = self._cell_grid(models.explainer.grid)
        look = widgets.HBox([widgets.HTML("Look here:"), self.cells], layout={"align_items": "center"})
        actions = widgets.HBox([self.more, self.reset, look], layout={"flex_flow": "row wrap", "gap": "8px"})
        self.widget = widgets.VBox([self.html, actions, self.where])
        self.widget.add_class("demo-card-view")

    @staticmethod
    def _button(text: str, css: str, tooltip: str) -> widgets.Button:
        button = widgets.Button(description=text, tooltip=tooltip, layout={"width": "auto"})
        button.add_class(css)
        return button

    def _cell_grid(self, grid: int) -> widgets.GridBox:
        """grid x grid small buttons laid over the picture's layout; each names where it is."""
        buttons = []
        for cell in grid_cells(grid, grid, grid, grid):
            button = widgets.Button(tooltip=position_phrase(cell), layout={"width": f"{_CELL_PX}px"})
            button.add_class("demo-cell")
            button.add_class(f"demo-cell-{cell.row}-{cell.col}")
            button.on_click(
                lambda _b, r=cell.row, c=cell.col: self._act(
                    lambda res: explore.look_here(res, self.models, r, c)
                )
            )
            buttons.append(button)
        layout = {"grid_template_columns": f"repeat({grid}, {_CELL_PX}px)", "grid_gap": "2px"}
        box = widgets.GridBox(buttons, layout=layout)
        box.add_class("demo-cells")
        return box

    def _act(self, action: Callable[[Result], Result]) -> None:
        """Run one card action with the controls disabled, then redraw the card."""
        controls = [self.more, self.reset, self.where, *self.cells.children]
        for control in controls:
            control.disabled = True
        self._busy(True)
        try:
            self.result = action(self.result)
        finally:
            for control in controls:
                control.disabled = False
            self._busy(False)
        self.html.value = card_html(self.result)

    def _on_reset(self) -> None:
        self.where.unobserve(self._on_where, names="value")
        self.where.value = "off"
        self.where.observe(self._on_where, names="value")
        self._act(explore.reset)

    def _on_where(self, change: dict) -> None:
        self._act(lambda r: explore.show_where(r, self.models, change["new"]))
