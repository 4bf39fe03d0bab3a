//! GraphQL face of the FHIR export: `fhirExport` answers the same `searchset` Bundle as
//! `GET /fhir/{type}` (the same [`export::search`], rules and audit), as JSON; `fhirSettings`
//! and `fhirSettingsSet` read and set the municipality's recipient identifier system.

use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::export::{self, FhirResource, Reader, Search};
use super::settings::{self, RecipientSystem};
use crate::auth::Role;
use crate::errors::ApiError;
use crate::graphql::context::{mutate, session, state};
use crate::graphql::errors::payload;
use crate::organizations::OrganizationKind;

// `Query` and `Mutation` name the area's roots for the area table, `crate::areas!`.
pub use self::FhirMutation as Mutation;
pub use self::FhirQuery as Query;

/// The identifier system the municipality's recipients' references are exported under.
#[derive(SimpleObject)]
pub struct FhirSettings {
    /// An absolute URI (`urn:…` or `https://…`).
    pub recipient_identifier_system: String,
    /// Whether it is Velferd's default (`urn:velferd:recipient-reference:<organisation number>`).
    pub is_default: bool,
}

#[derive(Default)]
pub struct FhirQuery;

#[Object]
impl FhirQuery {
    /// A FHIR R4 `searchset` Bundle of the caller's municipality's dispensed doses
    /// (`MEDICATION_DISPENSE`), alarms (`BUNDLE`: one collection Bundle each) or other alerts
    /// (`DETECTED_ISSUE`) whose `meta.lastUpdated` lies in [`since`, `until`) — `until` defaults
    /// to 2 s before now — oldest first, `first` (1 to 100, default 50) at a time; `after` is
    /// the `_cursor` of the previous page's `next` link. The same document as `GET /fhir/{type}`
    /// (docs/fhir.md). Roles: the municipality's `integration` or `case_worker`; every resource
    /// served that names a recipient is written to the audit log.
    // A page of up to a hundred resources with their lookups: what a page of a connection costs.
    #[graphql(complexity = 100)]
    async fn fhir_export(
        &self,
        ctx: &Context<'_>,
        resource: FhirResource,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        first: Option<i64>,
        after: Option<String>,
    ) -> Result<Json<serde_json::Value>> {
        let reader = Reader::of(&session(ctx).grant)?;
        let search = Search::new(resource, since, until, first, after.as_deref(), Utc::now())
            .map_err(|e| ApiError::BadUserInput(e.0))?;
        Ok(Json(export::search(&state(ctx).db, &reader, &search, "").await?))
    }

    /// The caller's municipality's FHIR settings. Roles: its `municipality_admin`,
    /// `integration` or `case_worker`.
    async fn fhir_settings(&self, ctx: &Context<'_>) -> Result<FhirSettings> {
        let grant = &session(ctx).grant;
        grant.require_any(&[Role::MunicipalityAdmin, Role::Integration, Role::CaseWorker], "read the FHIR settings")?;
        let org = grant.organization().ok_or_else(|| ApiError::internal("a role without an organisation"))?;
        if org.kind != OrganizationKind::Municipality {
            return Err(ApiError::Forbidden("FHIR settings are a municipality's".into()).into());
        }
        let (system, is_default) = settings::recipient_system(state(ctx).db.read(), org).await?;
        Ok(FhirSettings { recipient_identifier_system: system, is_default })
    }
}

payload!(FhirSettingsSetPayload, settings: FhirSettings, "Result of `fhirSettingsSet`.");

#[derive(InputObject)]
pub struct FhirSettingsSetInput {
    /// The identifier system of the recipients' references: an absolute URI (`urn:…`,
    /// `https://…`) of at most 255 characters, never a national identity number's system. Null
    /// or absent: back to the default.
    pub recipient_identifier_system: Option<String>,
}

#[derive(Default)]
pub struct FhirMutation;

#[Object]
impl FhirMutation {
    /// Sets the identifier system the municipality's recipients' pseudonymous references are
    /// exported under, as its journal system expects them. Role: `municipality_admin`.
    async fn fhir_settings_set(
        &self,
        ctx: &Context<'_>,
        input: FhirSettingsSetInput,
    ) -> Result<FhirSettingsSetPayload> {
        let caller = session(ctx).grant.caller(Role::MunicipalityAdmin, "set the FHIR settings")?;
        let parsed = input.recipient_identifier_system.as_deref().map(RecipientSystem::parse).transpose();
        let settings_of = |(system, is_default)| FhirSettings { recipient_identifier_system: system, is_default };
        mutate(ctx, parsed, settings_of, async |txn, system| settings::set_recipient_system(txn, &caller, system).await)
            .await
    }
}
