//! Learning across municipalities: learning networks with gatherings and attendance per
//! organisation, learning arenas (dialogue activities opened to others), experience reports
//! with lessons and full-text search, and followers reusing a procurement's needs mapping.

pub mod demo;
pub mod graphql;
pub mod loaders;
pub mod model;
pub mod rules;
pub mod search;
