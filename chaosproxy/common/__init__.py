"""Leaf modules every layer imports: errors, clock, tasks, events, units, ids, sketches.

They import nothing else of the package."""
