//! Care operations of a municipality: its service recipients (tjenestemottakere), named only by
//! the municipality's pseudonymous reference.

pub mod model;
