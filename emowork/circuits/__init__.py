"""Emotion circuits (docs/method.md sections 7 and 10): sublayer influence, circuit assembly, modulation and attribution
graphs."""

from .assembly import Circuit, CircuitError, allocate, assemble, random_circuit
from .graph import AttributionGraph, Node, attribution_graph, circuit_write_into_target, direct_write, edges_by_patching
from .graph_files import load_graph, mean_graph, validate_viewer_json, viewer_json
from .modulation import BUDGETS, RANDOM_SEEDS, SCALES, Comparison, choose_scale, circuit_edits, circuit_generate, compare_methods
from .influence import (ALPHAS, SUBLAYERS, SublayerInfluence, reference_directions, residual_scales, stable_segment,
                        sublayer_influence, sublayer_influence_loop)

__all__ = ["AttributionGraph", "Node", "attribution_graph", "circuit_write_into_target", "direct_write", "edges_by_patching", "load_graph", "mean_graph",
           "validate_viewer_json", "viewer_json", "BUDGETS", "RANDOM_SEEDS", "SCALES", "Comparison", "choose_scale", "circuit_edits", "circuit_generate",
           "compare_methods", "Circuit", "CircuitError", "allocate", "assemble", "random_circuit", "ALPHAS", "SUBLAYERS", "SublayerInfluence",
           "reference_directions", "residual_scales", "stable_segment", "sublayer_influence", "sublayer_influence_loop"]
