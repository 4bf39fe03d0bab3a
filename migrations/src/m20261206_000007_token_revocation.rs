//! Revoked tokens: a leaked token (a machine's integration token, most often) is refused before
//! it expires. A row revokes every token of one subject of one organisation issued up to its
//! time; tokens issued later work again.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl;

ddl::migration! {
    #[unique(uq_token_revocation: OrgNumber, Subject)]
    TokenRevocation {
        OrgNumber: string_len(20),
        Subject: string_len(200),
        IssuedUpTo: big_integer,
        Reason: string_len_null(500),
        RevokedBy: string_len(200),
        RevokedAt: timestamp_with_time_zone,
    }
}
