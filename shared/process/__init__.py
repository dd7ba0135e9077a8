"""A process's own life: the tasks it cannot serve without, its tie to its parent."""
