"""Scale-out over Redis: one elected ingestor publishes every update once, gateways fan it out to their clients."""
