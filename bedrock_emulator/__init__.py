"""A local Amazon Bedrock that the real boto3 client talks to unchanged.

It speaks Bedrock's wire protocol (rest-json requests, event-stream
responses) for Converse, ConverseStream and the control-plane calls a service
makes to check its models, answers deterministically (see answers.py), and can
inject faults and record every request (see faults.py, requests_log.py).
"""
