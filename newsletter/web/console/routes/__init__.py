"""The console's pages, one module per page family; every router but `login` is guarded."""
