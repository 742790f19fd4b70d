"""`make bench`: what the pair adds to time to first token, next to boto3 calling the emulator.

Run on demand, never from `make test`: speed is measured here, not asserted in tests.
"""
