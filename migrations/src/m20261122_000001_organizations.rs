//! Organisations: municipalities, suppliers, programmes and response centres.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl;

ddl::migration! {
    #[index(idx_organization_name: Name, Id)]
    #[index(idx_organization_county: County, Id)]
    #[index(idx_organization_kind: Kind, Id)]
    Organization {
        Kind: string_len(32),
        Name: string_len(200),
        // Unique but optional: a demo organisation whose number we could not find in a
        // public source has none rather than an invented one.
        OrgNumber: string_len_null(9).unique_key(),
        MunicipalityNumber: string_len_null(4),
        County: string_len_null(64),
        Population: big_integer_null,
        PopulationYear: integer_null,
        CreatedAt: timestamp_with_time_zone,
    }
}
