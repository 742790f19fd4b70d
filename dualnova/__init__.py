"""DualNova: shared pieces of both services (settings, logging, process launch), the CLI, and the generated gRPC stubs."""
