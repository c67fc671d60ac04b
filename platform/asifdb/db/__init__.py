"""Database layer: typed models, sessions, the embedded server and the schema's SQL views."""
