//! Revocations a token's organisation number cannot key: tokens that name their organisation by
//! its Velferd id (the `oid` claim: programmes, foreign suppliers and the platform operator have
//! no organisation number), and single tokens by their id (`jti`). The first table mirrors
//! `token_revocation` with the organisation's row instead of its number.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references};
use crate::m20261122_000001_organizations::Organization;

ddl::migration! {
    #[unique(uq_organization_token_revocation: OrganizationId, Subject)]
    OrganizationTokenRevocation {
        OrganizationId: references(Organization::Table),
        Subject: string_len(200),
        IssuedUpTo: big_integer,
        Reason: string_len_null(500),
        RevokedBy: string_len(200),
        RevokedAt: timestamp_with_time_zone,
    }

    #[unique(uq_token_id_revocation: TokenId)]
    TokenIdRevocation {
        TokenId: string_len(200),
        Reason: string_len_null(500),
        RevokedBy: string_len(200),
        RevokedAt: timestamp_with_time_zone,
    }
}
