//! Framework agreements that follow awards, and the call-offs municipalities place under them.

pub mod model;
