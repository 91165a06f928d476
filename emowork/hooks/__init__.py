"""Reading and writing activations: sites, capture, the activation store, interventions and their executors."""
