"""Emotion circuits (docs/method.md section 7): sublayer influence, circuit assembly and modulation."""

from .assembly import Circuit, CircuitError, allocate, assemble, random_circuit
from .modulation import BUDGETS, RANDOM_SEEDS, SCALES, Comparison, choose_scale, circuit_edits, circuit_generate, compare_methods
from .influence import (ALPHAS, SUBLAYERS, SublayerInfluence, reference_directions, residual_scales, stable_segment,
                        sublayer_influence, sublayer_influence_loop)

__all__ = ["BUDGETS", "RANDOM_SEEDS", "SCALES", "Comparison", "choose_scale", "circuit_edits", "circuit_generate",
           "compare_methods", "Circuit", "CircuitError", "allocate", "assemble", "random_circuit", "ALPHAS", "SUBLAYERS", "SublayerInfluence",
           "reference_directions", "residual_scales", "stable_segment", "sublayer_influence", "sublayer_influence_loop"]
