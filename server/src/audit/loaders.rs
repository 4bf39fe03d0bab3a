//! The audit log has no relations to batch: entries name their organisation, which the
//! organisations' loader fetches.
