//! The procurement's input values, parsed once at the GraphQL edge so rules never see a raw
//! string, an unchecked number or an unpriced response.

use crate::errors::Invalid;
use crate::text::Text;

/// A Doffin notice reference.
pub type Reference = Text<100>;
/// An evaluation criterion's name.
pub type CriterionName = Text<200>;

/// A user story's short code, e.g. "US1": 1 to 20 letters, digits, '-' or '.'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryCode(String);

impl StoryCode {
    pub fn parse(value: &str) -> Result<StoryCode, Invalid> {
        let code = value.trim();
        let valid = !code.is_empty()
            && code.len() <= 20
            && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        match valid {
            true => Ok(StoryCode(code.to_string())),
            false => Err(Invalid::new("code", "INVALID_CODE", "a code is 1 to 20 letters, digits, '-' or '.'")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An evaluation criterion's weight: 1 to 100 percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weight(i32);

impl Weight {
    pub fn parse(percent: i32) -> Result<Weight, Invalid> {
        match (1..=100).contains(&percent) {
            true => Ok(Weight(percent)),
            false => Err(Invalid::new("weight", "INVALID_WEIGHT", "a weight is 1 to 100 percent")),
        }
    }

    pub fn percent(self) -> i32 {
        self.0
    }
}

/// A score from 0 to 10, kept in hundredths: two decimals count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score(i32);

impl Score {
    pub fn parse(value: f64) -> Result<Score, Invalid> {
        match value.is_finite() && (0.0..=10.0).contains(&value) {
            true => Ok(Score((value * 100.0).round() as i32)),
            false => Err(Invalid::new("scores", "INVALID_SCORE", "a score is from 0 to 10")),
        }
    }

    pub fn hundredths(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_weights_and_scores_are_checked_once() {
        assert_eq!(StoryCode::parse(" US-1.2 ").unwrap().as_str(), "US-1.2");
        for bad in ["", "  ", "US 1", "US/1", "ABCDEFGHIJKLMNOPQRSTU"] {
            assert_eq!(StoryCode::parse(bad).unwrap_err().code, "INVALID_CODE", "{bad:?}");
        }
        assert_eq!(Weight::parse(100).unwrap().percent(), 100);
        assert!(Weight::parse(0).is_err() && Weight::parse(101).is_err());
        assert_eq!(Score::parse(6.8).unwrap().hundredths(), 680);
        for bad in [-0.01, 10.01, f64::NAN, f64::INFINITY] {
            assert_eq!(Score::parse(bad).unwrap_err().code, "INVALID_SCORE", "{bad}");
        }
    }
}
