"""The bundled demo system: a JSON service (primary and replica) and a gateway with failover."""
