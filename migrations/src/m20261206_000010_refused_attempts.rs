//! The refusal log: refused and throttled attempts, counted per minute, caller and code, so a
//! flood costs a handful of rows a minute, never a row per attempt. Instances add their counts
//! to the same row (an upsert on the unique key).

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl;

ddl::migration! {
    #[unique(uq_refused_attempt: Minute, Caller, Code)]
    #[index(idx_refused_attempt_code: Code, Minute)]
    RefusedAttempt {
        // The minute's first second since the Unix epoch: sortable and the same on both back ends.
        Minute: big_integer,
        Caller: string_len(200),
        Code: string_len(64),
        Attempts: big_integer,
    }
}
