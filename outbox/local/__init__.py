"""What only runs locally: the emulator, the stack, its HTTP server, the runners playing Lambda's mappings, the demo."""
