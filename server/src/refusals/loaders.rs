//! The refusal log has no relations to batch: its rows are read as one list.
