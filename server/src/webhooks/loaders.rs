//! DataLoader keys of webhooks (see `graphql::loaders`).

use super::model::{webhook_attempt, webhook_delivery, webhook_endpoint};
use crate::graphql::loaders::{by_id, children};

by_id!(WebhookEndpointById, webhook_endpoint);
by_id!(WebhookDeliveryById, webhook_delivery);
children!(AttemptsOf, webhook_attempt, DeliveryId, delivery_id);
