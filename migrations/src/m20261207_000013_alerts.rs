//! Alerts and the response centre's workflow: service agreements (which response centre serves
//! which municipality, when), each municipality's escalation lines per severity, alerts raised
//! from device events with every step of their handling, the deadlines a background sweep fires
//! (acknowledge and accept in time; a device heard from in time), and each product's heartbeat
//! and test intervals.
//!
//! Times a sweep compares are kept as milliseconds since the Unix epoch: the same comparison on
//! both back ends, whatever text SQLite stores a timestamp as.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references, references_null};
use crate::m20261122_000001_organizations::Organization;
use crate::m20261122_000002_procurements::CallOff;
use crate::m20261122_000004_devices::{Device, DeviceProduct};

ddl::migration! {
    #[index(idx_service_agreement_municipality: MunicipalityId, ValidFrom)]
    #[index(idx_service_agreement_centre: ResponseCentreId, ValidFrom)]
    ServiceAgreement {
        ResponseCentreId: references(Organization::Table),
        MunicipalityId: references(Organization::Table),
        // The municipality's call-off under which it bought the service, when it says.
        CallOffId: references_null(CallOff::Table),
        ValidFrom: date,
        ValidTo: date,
        CreatedBy: string_len(200),
        CreatedAt: timestamp_with_time_zone,
    }
    #[unique(uq_alert_escalation: MunicipalityId, Severity)]
    AlertEscalation {
        MunicipalityId: references(Organization::Table),
        Severity: string_len(20),
        AcknowledgeSeconds: integer,
        AcceptSeconds: integer,
        // The next line: another response centre, or the municipality itself (NULL: itself).
        NextLineId: references_null(Organization::Table),
        UpdatedBy: string_len(200),
        UpdatedAt: timestamp_with_time_zone,
    }
    // One alert per raising event; one open alert per device and kind (`OpenKey`, cleared when
    // it is resolved): the database keeps both, so concurrent writers join rather than repeat.
    #[unique(uq_alert_event: EventId)]
    #[unique(uq_alert_open: OpenKey)]
    #[index(idx_alert_queue: MunicipalityId, Status, QueueKey)]
    #[index(idx_alert_device: DeviceId, Status)]
    Alert {
        MunicipalityId: references(Organization::Table),
        DeviceId: references(Device::Table),
        // The recipient the device was assigned to when the alert was raised.
        RecipientId: big_integer_null,
        Kind: string_len(40),
        Severity: string_len(20),
        VkpCode: string_len_null(10),
        // Severity first, then age: the operator's queue order, one sortable text.
        QueueKey: string_len(40),
        EventId: big_integer_null,
        OpenKey: string_len_null(80),
        Status: string_len(30),
        Outcome: string_len_null(30),
        EventCount: integer,
        FirstEventAt: timestamp_with_time_zone,
        LastEventAt: timestamp_with_time_zone,
        RaisedAt: timestamp_with_time_zone,
        ResolvedAt: timestamp_with_time_zone_null,
        ResponderId: big_integer_null,
        EscalatedToId: big_integer_null,
        Escalations: integer,
    }
    #[index(idx_alert_step_alert: AlertId)]
    AlertStep {
        AlertId: references(Alert::Table),
        Kind: string_len(30),
        VkpCode: string_len_null(4),
        Note: text_null,
        Outcome: string_len_null(30),
        Subject: string_len(200),
        OrganizationId: big_integer_null,
        Role: string_len_null(40),
        At: timestamp_with_time_zone,
    }
    #[index(idx_alert_deadline_due: DueAtMs)]
    #[index(idx_alert_deadline_alert: AlertId)]
    AlertDeadline {
        AlertId: references(Alert::Table),
        // acknowledge | accept
        Kind: string_len(20),
        DueAtMs: big_integer,
        FiredAtMs: big_integer_null,
        SettledAtMs: big_integer_null,
    }
    #[unique(uq_device_watch: DeviceId, Kind)]
    #[index(idx_device_watch_due: DueAtMs)]
    DeviceWatch {
        DeviceId: references(Device::Table),
        // heartbeat | test
        Kind: string_len(20),
        DueAtMs: big_integer,
        FiredAtMs: big_integer_null,
    }
    #[unique(uq_product_monitoring: ProductId)]
    ProductMonitoring {
        ProductId: references(DeviceProduct::Table),
        HeartbeatSeconds: integer_null,
        TestSeconds: integer_null,
        SetBy: string_len(200),
        SetAt: timestamp_with_time_zone,
    }
}
