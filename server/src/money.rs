//! Money in Norwegian kroner, kept in øre so sums and comparisons are exact.

use std::fmt;
use std::str::FromStr;

use async_graphql::{Enum, InputObject, SimpleObject};

/// An amount of NOK, at least zero, in øre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nok(i64);

/// The largest amount accepted: a trillion kroner is beyond any municipal procurement.
const MAX_ORE: i64 = 100_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an amount is kroner with at most two decimals, like \"1234.50\", from 0 to 1 000 000 000 000; {0:?} is not")]
pub struct MoneyError(pub String);

impl Nok {
    pub fn from_ore(ore: i64) -> Nok {
        Nok(ore)
    }

    pub fn ore(self) -> i64 {
        self.0
    }
}

impl FromStr for Nok {
    type Err = MoneyError;
    /// Accepts `1234`, `1234.5`, `1234.50` (a comma works as the decimal mark too).
    fn from_str(s: &str) -> Result<Nok, MoneyError> {
        let bad = || MoneyError(s.to_string());
        let text = s.trim().replace(',', ".");
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        if whole.is_empty() || whole.len() > 13 || fraction.len() > 2 {
            return Err(bad());
        }
        if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let kroner: i64 = whole.parse().map_err(|_| bad())?;
        let ore_part: i64 = match fraction.len() {
            0 => 0,
            1 => fraction.parse::<i64>().map_err(|_| bad())? * 10,
            _ => fraction.parse().map_err(|_| bad())?,
        };
        let ore = kroner.checked_mul(100).and_then(|o| o.checked_add(ore_part)).ok_or_else(bad)?;
        if ore > MAX_ORE { Err(bad()) } else { Ok(Nok(ore)) }
    }
}

impl fmt::Display for Nok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CurrencyCode {
    /// Norwegian krone; the only currency Norwegian municipalities contract in here.
    Nok,
}

/// An amount with its currency, as Shopify's `MoneyV2`: the amount is a decimal string, never
/// a float.
#[derive(SimpleObject, Clone, Debug)]
pub struct Money {
    /// Decimal amount with two decimals, e.g. "1234.50".
    pub amount: String,
    pub currency_code: CurrencyCode,
}

impl From<Nok> for Money {
    fn from(n: Nok) -> Money {
        Money { amount: n.to_string(), currency_code: CurrencyCode::Nok }
    }
}

#[derive(InputObject, Clone, Debug)]
pub struct MoneyInput {
    /// Decimal amount, at most two decimals, e.g. "1234.50".
    pub amount: String,
    pub currency_code: CurrencyCode,
}

impl MoneyInput {
    pub fn parse(&self) -> Result<Nok, MoneyError> {
        self.amount.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!("1234".parse::<Nok>().unwrap().ore(), 123_400);
        assert_eq!("1234.5".parse::<Nok>().unwrap().ore(), 123_450);
        assert_eq!("1234,05".parse::<Nok>().unwrap().ore(), 123_405);
        for bad in ["", "-1", "1.234", "1e3", "12 000", ".5", "99999999999999"] {
            assert!(bad.parse::<Nok>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(ore in 0i64..MAX_ORE) {
            let n = Nok::from_ore(ore);
            prop_assert_eq!(n.to_string().parse::<Nok>().unwrap(), n);
        }
    }
}
