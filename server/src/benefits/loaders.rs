//! DataLoader keys of benefits realisation (see `graphql::loaders`).

use super::model::benefit_measurement;
use crate::graphql::loaders::children;

children!(MeasurementsOf, benefit_measurement, IndicatorId, indicator_id);
