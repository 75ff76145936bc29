"""Leaf modules every layer imports: errors, clock, tasks, events, units, ids, sketches, logs.

They import nothing else of the package."""
