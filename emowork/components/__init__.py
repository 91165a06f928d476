"""Local components that write the emotion directions: neurons and attention heads (docs/method.md section 4).

    samples = components.collect_samples(handle, groups)
    neurons = components.neuron_contributions(handle, directions, samples)
    heads = components.head_importance(handle, directions, samples, method="masked")
"""

from .dose_response import DoseResponse, readout_layer, run_dose_response, target_layers
from .editing import LastTokenRunner, component_edit
from .judged_edits import judged_edits
from .viewers import OfflineHTML, attention_patterns, colored_tokens, head_token_contributions, neuron_activations, top_activating
from .heads import HeadImportance, head_importance, head_importance_masking_loop, masking_loop_tolerance
from .neurons import NeuronContributions, neuron_contributions
from .activation_samples import ComponentSamples, collect_samples, difference_vectors

__all__ = ["ComponentSamples", "collect_samples", "difference_vectors", "NeuronContributions", "neuron_contributions",
           "HeadImportance", "head_importance", "head_importance_masking_loop", "component_edit", "LastTokenRunner",
           "DoseResponse", "run_dose_response", "readout_layer", "target_layers", "judged_edits",
           "OfflineHTML", "attention_patterns", "colored_tokens", "head_token_contributions", "neuron_activations", "top_activating"]
