"""DualNova: what both services share (settings, logs, telemetry, launcher), the CLI,
and the generated gRPC stubs."""
