//! The shape of a Norwegian national identity number (fødselsnummer, D-number, H-number), which
//! Velferd never stores. Defined here, beside the migration that quarantines such values already
//! stored (`m20261207_000012_care`), and used by the server's care-text guard
//! (`velferd::text::CareText`): the stored rows and new input are judged by the same function.

/// Whether `value` holds 11 digits in a row, or 6 digits, a separator (one to three spaces or
/// punctuation marks such as `-`, `.`, `/`, ` - `, or a no-break space) and 5 digits — the shapes a
/// fødselsnummer, D-number or H-number is written in. ASCII and full-width digits both count;
/// digits inside longer runs or glued to letters count too.
pub fn holds_national_id(value: &str) -> bool {
    fn digit(c: char) -> bool {
        c.is_ascii_digit() || ('\u{ff10}'..='\u{ff19}').contains(&c)
    }
    fn separator(c: char) -> bool {
        c.is_whitespace() || c.is_ascii_punctuation() || matches!(c, '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{00b7}')
    }
    // Runs of digits, each with whether one separator alone joins it to the run before.
    let chars: Vec<char> = value.chars().collect();
    let mut previous_run: Option<(usize, usize)> = None; // (length, end index)
    let mut i = 0;
    while i < chars.len() {
        if !digit(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && digit(chars[i]) {
            i += 1;
        }
        let len = i - start;
        if len >= 11 {
            return true;
        }
        if let Some((before, end)) = previous_run
            && (1..=3).contains(&(start - end))
            && chars[end..start].iter().all(|c| separator(*c))
            && before >= 6
            && len >= 5
        {
            return true;
        }
        previous_run = Some((len, i));
    }
    false
}

/// A checksum-valid fødselsnummer for the birth date `dd mm yy` and individual number `iii`
/// (None when no control digits fit); `dd + 40` makes a D-number, `mm + 40` an H-number. For
/// tests (here, the server's and the end-to-end suite's), which must show that valid numbers
/// are refused: Velferd itself never needs to make one.
pub fn example(dd: u32, mm: u32, yy: u32, iii: u32) -> Option<String> {
    let digits: Vec<u32> = format!("{dd:02}{mm:02}{yy:02}{iii:03}").chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 9 {
        return None;
    }
    let control = |weights: &[u32], digits: &[u32]| {
        let sum: u32 = weights.iter().zip(digits).map(|(w, d)| w * d).sum();
        match 11 - sum % 11 {
            11 => Some(0),
            10 => None,
            k => Some(k),
        }
    };
    let mut all = digits.clone();
    all.push(control(&[3, 7, 6, 1, 8, 9, 4, 5, 2], &digits)?);
    let k2 = control(&[5, 4, 3, 2, 7, 6, 5, 4, 3, 2], &all)?;
    all.push(k2);
    Some(all.iter().filter_map(|d| char::from_digit(*d, 10)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_example_is_valid_and_held() {
        let id = example(1, 1, 0, 123).expect("controls fit");
        assert_eq!(id.len(), 11);
        assert!(holds_national_id(&id));
        assert_eq!(example(100, 1, 0, 1), None, "not two digits of day");
    }
}
