"""Process wiring: settings, the gateway process, the CLI, the demo data and telemetry."""
