"""Lambda handlers of the relay side: the stream worker and the reference SQS consumer."""
