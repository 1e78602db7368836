"""Staff and their readers: one reader's whole story (`profile`), what staff may do to a
reader (`actions`) and to the topics readers follow (`topic_changes`), each audited, and the
console's search over the list (`search`)."""
