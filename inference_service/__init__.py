"""The inference service: Bedrock's ConverseStream behind a typed gRPC Chat RPC.

It is the only DualNova component that holds AWS credentials and the only one
that talks to Bedrock (through the bedrock package).
"""
