//! Benefits realisation (gevinstrealisering): the benefit indicators a municipality enters per
//! procurement (baseline, target, measurements over time), and the municipality's own
//! assumptions behind the indicators Velferd measures from device data (the dose window, the
//! minutes one home visit takes).
//!
//! Values are decimals kept as whole ten-thousandths (`value_e4`), so sums and comparisons are
//! exact on both back ends.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references};
use crate::m20261122_000001_organizations::Organization;
use crate::m20261122_000002_procurements::Procurement;

ddl::migration! {
    #[unique(uq_benefit_indicator_name: ProcurementId, MunicipalityId, Name)]
    #[index(idx_benefit_indicator_municipality: MunicipalityId, ProcurementId)]
    BenefitIndicator {
        ProcurementId: references(Procurement::Table),
        MunicipalityId: references(Organization::Table),
        Name: string_len(300),
        Unit: string_len(100),
        BaselineValueE4: big_integer,
        BaselineOn: date,
        TargetValueE4: big_integer,
        TargetOn: date,
        CreatedBy: string_len(200),
        CreatedAt: timestamp_with_time_zone,
    }
    // One measurement per indicator and date: a second one for the same date is refused.
    #[unique(uq_benefit_measurement_date: IndicatorId, MeasuredOn)]
    BenefitMeasurement {
        IndicatorId: references(BenefitIndicator::Table),
        MeasuredOn: date,
        ValueE4: big_integer,
        Note: text_null,
        RecordedBy: string_len(200),
        RecordedAt: timestamp_with_time_zone,
    }
    // At most one row per municipality; none means the defaults.
    #[unique(uq_benefit_assumption_municipality: MunicipalityId)]
    BenefitAssumption {
        MunicipalityId: references(Organization::Table),
        DoseWindowMinutes: integer,
        MinutesPerVisit: integer_null,
        UpdatedBy: string_len(200),
        UpdatedAt: timestamp_with_time_zone,
    }
}
