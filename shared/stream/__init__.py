"""A job's output stream: its numbered chunks and the journal that keeps them."""
