"""Analyses of activations and replies: directions, geometry, consistency, probes, elicitation, steering."""
