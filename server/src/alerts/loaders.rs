//! DataLoader keys of the alerts area (see `graphql::loaders`).

use super::model::{alert, alert_step, service_agreement};
use crate::graphql::loaders::{by_id, children};

by_id!(AlertById, alert);
by_id!(ServiceAgreementById, service_agreement);
children!(StepsOf, alert_step, AlertId, alert_id);

use crate::care::model::service_recipient;

// Named for this area: the care area keeps its own keys for recipients.
by_id!(AlertRecipientById, service_recipient);
