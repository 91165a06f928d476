"""Generating replies: batched generation, the reply cache, streaming, fluency."""
