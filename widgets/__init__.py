"""ipywidgets panels for the emowork notebooks.

Every panel keeps its logic in plain methods/functions (tested headless); displaying the object shows it.
"""

from .activation_explorer import ActivationExplorer

__all__ = ["ActivationExplorer"]
