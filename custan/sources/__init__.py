"""Sources: where transactions come from and how they reach the engine."""
