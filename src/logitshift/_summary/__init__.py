"""Summaries: the rows' passes, the sketch and the group sketch, rows kept in memory, and the chunk step that every source shares."""
