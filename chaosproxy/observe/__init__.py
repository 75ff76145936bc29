"""What the proxy records about itself: Prometheus metrics, per-second stats, the event log and
the per-client memory of Retry-After. Fed by engine events; never imports the engine."""
