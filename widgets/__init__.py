"""ipywidgets panels for the emowork notebooks.

Every panel keeps its logic in plain methods/functions (tested headless); displaying the object shows it.
"""

from .activation_explorer import ActivationExplorer
from .dataset_browser import DatasetBrowser
from .draft_review import DraftReviewer
from .graph_viewer import GraphViewer
from .rating import RatingPanel
from .reply_browser import ReplyBrowser
from .steering import SteeringPanel

__all__ = ["ActivationExplorer", "DatasetBrowser", "DraftReviewer", "GraphViewer", "RatingPanel", "ReplyBrowser", "SteeringPanel"]
