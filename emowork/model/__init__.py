"""Loading models: the handle, embedded and test models, devices, fingerprints, the unwrapped model."""
