"""AnimaFlow Inference control plane."""
