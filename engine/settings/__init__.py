"""Settings: the typed schema of settings.toml, its in-place editing, and where user code comes from."""
