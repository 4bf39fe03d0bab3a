//! Care operations of a municipality: its service recipients (tjenestemottakere), named only by
//! the municipality's pseudonymous reference, their status history, and the professional
//! assessments (faglig vurdering) that let a device be assigned to them. The devices themselves
//! and their lifecycle are the devices area's (`crate::devices::rules`).

pub mod demo;
pub mod graphql;
pub mod loaders;
pub mod model;
pub mod rules;
pub mod sweep;
