//! Organisations: the municipalities, suppliers, programmes and response centres that take
//! part, and the platform operator. Every other area refers to them, and authorization is decided by them (a token names
//! the organisation its holder acts for).

pub mod graphql;
mod identifiers;
pub mod loaders;
pub mod model;
pub mod revocations;
mod service;

pub use graphql::Organization;
pub use identifiers::{CountyName, MunicipalityNumber, OrgNumber, OrganizationName};
pub use model::OrganizationKind;
pub use service::{
    MunicipalityFacts, NewOrganization, OperatorError, OrganizationError, PopulationFigure, ensure_operator,
};
pub(crate) use service::{count_members, find_by_id, find_by_org_number, insert};
