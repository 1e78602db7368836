"""The reader's side, one module per page family, and the provider webhook."""
