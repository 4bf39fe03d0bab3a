//! Joint procurements, from needs to awards: participants, the phase machine, the needs and
//! dialogue phases, and the competition (user stories as lots, sealed tenders, evaluation).

pub mod access;
pub mod graphql;
pub mod loaders;
pub mod model;
pub mod ocds;
pub mod phase;
pub mod rules;
pub mod values;
