"""I/O at the edge: the DynamoDB store, sweep source and reader, the SQS publisher and visibility, boto3 clients.

Import each adapter from its module: importing this package loads none of them, so a function
loads only the adapters its use case takes (the API never publishes).
"""
