"""One router per resource: jobs of each kind (one shared factory), market data, health."""
