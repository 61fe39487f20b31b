"""AnimaFlow Inference control plane."""

from animaflow_control.collection import ensure_importable

ensure_importable()
