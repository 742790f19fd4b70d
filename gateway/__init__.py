"""The gateway: DualChat sends one conversation to Nova Micro and Nova Pro at once."""
