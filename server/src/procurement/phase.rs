//! The phase machine of a joint innovative procurement, as one function over an enum.
//!
//! NEEDS → DIALOGUE → COMPETITION → IMPLEMENTATION → EVALUATION → CLOSED, one step at a time.
//! Any open phase may be put ON_HOLD with a reason (e.g. when health legislation blocked
//! changing the whole service journey); resuming returns to the phase it left, nowhere else.

use sea_orm::sea_query::StringLen;
use serde::{Deserialize, Serialize};

use crate::errors::RuleViolation;
use crate::text::Paragraph;

crate::stored_enum! {
    #[derive(PartialOrd, Ord, Serialize, Deserialize, async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum Phase {
        /// Behov: experience sharing and needs mapping; the service journey.
        #[sea_orm(string_value = "needs")]
        Needs,
        /// Dialog: dialogue conference, solution sketches, one-to-one meetings.
        #[sea_orm(string_value = "dialogue")]
        Dialogue,
        /// Konkurranse: notice, user stories as lots, sealed tenders, evaluation, awards.
        #[sea_orm(string_value = "competition")]
        Competition,
        /// Implementering: framework agreements in force; municipalities call off.
        #[sea_orm(string_value = "implementation")]
        Implementation,
        /// Evaluering: experience reports and benefits realisation.
        #[sea_orm(string_value = "evaluation")]
        Evaluation,
        #[sea_orm(string_value = "closed")]
        Closed,
        /// Lagt på is: paused with a reason; resumes to the phase it left.
        #[sea_orm(string_value = "on_hold")]
        OnHold,
    }
}

impl Phase {
    /// The phase after this one in the ordinary course, if any.
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Needs => Some(Phase::Dialogue),
            Phase::Dialogue => Some(Phase::Competition),
            Phase::Competition => Some(Phase::Implementation),
            Phase::Implementation => Some(Phase::Evaluation),
            Phase::Evaluation => Some(Phase::Closed),
            Phase::Closed | Phase::OnHold => None,
        }
    }
}

/// Where a procurement stands: its phase and, when on hold, the phase to resume to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseState {
    Active(Phase),
    OnHold { resume_to: Phase, reason: String },
}

impl PhaseState {
    pub fn phase(&self) -> Phase {
        match self {
            PhaseState::Active(phase) => *phase,
            PhaseState::OnHold { .. } => Phase::OnHold,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, RuleViolation)]
pub enum PhaseError {
    #[error("a procurement in {from:?} cannot move to {to:?}; the next phase is {expected}")]
    #[violation(field = "phase", code = "ILLEGAL_PHASE_TRANSITION")]
    IllegalJump { from: Phase, to: Phase, expected: String },
    #[error("a procurement on hold resumes to the phase it left ({resume_to:?}), not {to:?}")]
    #[violation(field = "phase", code = "ILLEGAL_PHASE_TRANSITION")]
    ResumeElsewhere { resume_to: Phase, to: Phase },
    #[error("putting a procurement on hold needs a reason")]
    #[violation(field = "reason", code = "REASON_REQUIRED")]
    HoldWithoutReason,
    #[error("a closed procurement cannot change phase")]
    #[violation(field = "phase", code = "ILLEGAL_PHASE_TRANSITION")]
    Closed,
    #[error("the procurement is already in {0:?}")]
    #[violation(field = "phase", code = "ILLEGAL_PHASE_TRANSITION")]
    Unchanged(Phase),
}

/// The one place that decides whether a phase change is legal, and what state follows.
/// `reason` is parsed at the edge, where a blank one is none.
pub fn transition(state: &PhaseState, to: Phase, reason: Option<&Paragraph>) -> Result<PhaseState, PhaseError> {
    match (state, to) {
        (PhaseState::Active(Phase::Closed), _) => Err(PhaseError::Closed),
        (PhaseState::Active(from), to) if *from == to => Err(PhaseError::Unchanged(to)),
        (PhaseState::Active(from), Phase::OnHold) => match reason {
            Some(reason) => Ok(PhaseState::OnHold { resume_to: *from, reason: reason.to_string() }),
            None => Err(PhaseError::HoldWithoutReason),
        },
        (PhaseState::Active(from), to) if from.next() == Some(to) => Ok(PhaseState::Active(to)),
        (PhaseState::Active(from), to) => Err(PhaseError::IllegalJump {
            from: *from,
            to,
            expected: from.next().map(|p| format!("{p:?}")).unwrap_or_else(|| "none".into()),
        }),
        (PhaseState::OnHold { .. }, Phase::OnHold) => Err(PhaseError::Unchanged(Phase::OnHold)),
        (PhaseState::OnHold { resume_to, .. }, to) if *resume_to == to => Ok(PhaseState::Active(to)),
        (PhaseState::OnHold { resume_to, .. }, to) => Err(PhaseError::ResumeElsewhere { resume_to: *resume_to, to }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Phase; 7] = [
        Phase::Needs,
        Phase::Dialogue,
        Phase::Competition,
        Phase::Implementation,
        Phase::Evaluation,
        Phase::Closed,
        Phase::OnHold,
    ];

    fn reason(text: &str) -> Paragraph {
        Paragraph::parse("reason", text).unwrap()
    }

    #[test]
    fn the_ordinary_course_runs_from_needs_to_closed() {
        let mut state = PhaseState::Active(Phase::Needs);
        for to in [Phase::Dialogue, Phase::Competition, Phase::Implementation, Phase::Evaluation, Phase::Closed] {
            state = transition(&state, to, None).unwrap();
        }
        assert_eq!(state, PhaseState::Active(Phase::Closed));
    }

    #[test]
    fn on_hold_needs_a_reason_and_resumes_where_it_left() {
        let dialogue = PhaseState::Active(Phase::Dialogue);
        assert_eq!(transition(&dialogue, Phase::OnHold, None), Err(PhaseError::HoldWithoutReason));
        let held = transition(&dialogue, Phase::OnHold, Some(&reason("legislation"))).unwrap();
        assert_eq!(held.phase(), Phase::OnHold);
        assert!(matches!(transition(&held, Phase::Competition, None), Err(PhaseError::ResumeElsewhere { .. })));
        assert_eq!(transition(&held, Phase::Dialogue, None), Ok(dialogue));
    }

    #[test]
    fn jumps_and_closed_procurements_are_refused() {
        let needs = PhaseState::Active(Phase::Needs);
        assert!(matches!(transition(&needs, Phase::Competition, None), Err(PhaseError::IllegalJump { .. })));
        assert!(matches!(transition(&needs, Phase::Needs, None), Err(PhaseError::Unchanged(_))));
        let closed = PhaseState::Active(Phase::Closed);
        assert_eq!(transition(&closed, Phase::OnHold, Some(&reason("x"))), Err(PhaseError::Closed));
    }

    proptest! {
        /// Whatever sequence of requests comes in, the machine only ever moves forward one
        /// step, holds, or resumes to where it left.
        #[test]
        fn every_accepted_change_is_a_step_a_hold_or_a_resume(requests in prop::collection::vec((0usize..7, any::<bool>()), 0..40)) {
            let mut state = PhaseState::Active(Phase::Needs);
            for (index, with_reason) in requests {
                let to = ALL[index];
                let before = state.clone();
                if let Ok(after) = transition(&before, to, with_reason.then(|| reason("reason")).as_ref()) {
                    match (&before, &after) {
                        (PhaseState::Active(from), PhaseState::Active(to)) => prop_assert_eq!(from.next(), Some(*to)),
                        (PhaseState::Active(from), PhaseState::OnHold { resume_to, .. }) => prop_assert_eq!(from, resume_to),
                        (PhaseState::OnHold { resume_to, .. }, PhaseState::Active(to)) => prop_assert_eq!(resume_to, to),
                        (PhaseState::OnHold { .. }, PhaseState::OnHold { .. }) => prop_assert!(false, "hold to hold"),
                    }
                    state = after;
                }
            }
        }
    }
}
