"""The local stack: an embedded emulator, the HTTP API, the stream runner and the consumer, on loopback."""
