"""Getting data in: the JSON/CSV importer and the synthetic population."""
