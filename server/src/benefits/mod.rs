//! Benefits realisation (gevinstrealisering): the indicators a municipality enters per
//! procurement (baseline, target, measurements), and the indicators Velferd measures from the
//! devices themselves per municipality, month and supplier — dose adherence, home visits
//! replaced and minutes freed, alarm answer times, devices online — as aggregates under
//! disclosure control. `docs/benefits.md` says what each means and assumes.

pub mod csv;
pub mod graphql;
pub mod loaders;
pub mod measure;
pub mod model;
pub mod report;
pub mod rules;
pub mod values;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The fewest recipients a published cell may cover when `VELFERD_BENEFITS_MIN_RECIPIENTS` is
/// not set.
pub const DEFAULT_MIN_RECIPIENTS: u32 = 5;

/// The name inside an indicator's id. Indicators are reached through their municipality's
/// figures (`benefitIndicators`, `benefitIndicator`), not through `node(id:)`, so the name is
/// not a node type; the encoding is the same opaque shape as every other id.
const INDICATOR: &str = "BenefitIndicator";

/// An indicator's opaque id.
pub fn indicator_id(row: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{INDICATOR}:{row}"))
}

/// The row an indicator id names; none for anything else.
pub fn indicator_row(id: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let row: i64 = text.strip_prefix(INDICATOR)?.strip_prefix(':')?.parse().ok()?;
    (row > 0).then_some(row)
}

#[cfg(test)]
mod tests {
    #[test]
    fn indicator_ids_round_trip_and_others_are_refused() {
        assert_eq!(super::indicator_row(&super::indicator_id(42)), Some(42));
        assert_eq!(super::indicator_row(&crate::ids::global_id(crate::ids::NodeType::Procurement, 42)), None);
        assert_eq!(super::indicator_row("garbage!"), None);
    }
}
