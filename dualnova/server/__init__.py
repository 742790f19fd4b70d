"""What both servers share at run time: settings, logs, telemetry, tracing, health, shutdown,
the way a server is built and a process started (launch, workers, ports, event loop)."""
