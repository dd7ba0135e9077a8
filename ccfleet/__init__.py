"""The `ccfleet` command line: starts and administers the front ends and workers."""
