"""Backend adapters: one module per engine family, all behind ``backends.base.Backend``."""
