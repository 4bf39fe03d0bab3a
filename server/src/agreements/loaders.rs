//! DataLoader keys of framework agreements and call-offs (see `graphql::loaders`).

use super::model::{call_off, framework_agreement};
use crate::graphql::loaders::{by_id, children};

by_id!(AgreementById, framework_agreement);
children!(AgreementsOf, framework_agreement, ProcurementId, procurement_id);
children!(CallOffsUnder, call_off, AgreementId, agreement_id);
by_id!(CallOffById, call_off);
