"""Models: model names and builders, the built-in networks and their layers."""
