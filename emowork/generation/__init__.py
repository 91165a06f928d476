"""Generating replies: batched generation, the reply cache, streaming, fluency, the live panel's logic."""
