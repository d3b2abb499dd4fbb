"""Database access: engine and sessions (`session`), the data model (`models`)."""
