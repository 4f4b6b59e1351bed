//! The accrual rate, kept as an exact decimal: `floor(89000 × 0.01)` must be 890, which binary
//! floating point does not promise for every amount and rate.

use orders::config;

/// Points per minor currency unit, as `numerator / denominator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointsRate {
    numerator: i128,
    denominator: i128,
}

#[derive(Debug, thiserror::Error)]
#[error("POINTS_RATE {0:?} is not a non-negative decimal such as 0.01 (at most 9 decimal places)")]
pub struct InvalidRate(String);

impl PointsRate {
    /// `POINTS_RATE`, default 0.01.
    pub fn from_env() -> Result<Self, InvalidRate> {
        Self::parse(&config::var(config::POINTS_RATE).unwrap_or_else(|| config::DEFAULT_POINTS_RATE.to_owned()))
    }

    pub fn parse(text: &str) -> Result<Self, InvalidRate> {
        let invalid = || InvalidRate(text.to_owned());
        let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || fraction.len() > 9 || whole.len() > 9 {
            return Err(invalid());
        }
        let denominator = 10_i128.pow(fraction.len() as u32);
        let numerator = format!("{whole}{fraction}").parse::<i128>().map_err(|_| invalid())?;
        Ok(Self { numerator, denominator })
    }

    /// `floor(total × rate)`; a negative total earns nothing. `None` when the points do not
    /// fit an `i64` (a rate above 1 on a huge total).
    pub fn points_for(&self, total: i64) -> Option<i64> {
        let points = (total.max(0) as i128 * self.numerator) / self.denominator;
        i64::try_from(points).ok()
    }
}

impl std::fmt::Display for PointsRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let places = self.denominator.ilog10() as usize;
        let (whole, fraction) = (self.numerator / self.denominator, self.numerator % self.denominator);
        match places {
            0 => write!(f, "{whole}"),
            _ => write!(f, "{whole}.{fraction:0places$}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_percent_of_the_sample_order() {
        assert_eq!(PointsRate::parse("0.01").unwrap().points_for(89_000), Some(890));
        assert_eq!(PointsRate::parse("0.01").unwrap().points_for(62_099), Some(620), "floored");
        assert_eq!(PointsRate::parse("0.015").unwrap().points_for(1_000), Some(15));
        assert_eq!(PointsRate::parse("2").unwrap().points_for(7), Some(14));
        assert_eq!(PointsRate::parse("0.29").unwrap().points_for(100), Some(29), "exact where 0.29 * 100.0 is 28.999…");
    }

    #[test]
    fn points_past_an_i64_are_refused_not_capped() {
        assert_eq!(PointsRate::parse("1").unwrap().points_for(i64::MAX), Some(i64::MAX));
        assert_eq!(PointsRate::parse("1.5").unwrap().points_for(i64::MAX), None);
    }

    #[test]
    fn a_rate_prints_as_it_was_written() {
        for rate in ["0.01", "0.015", "2", "12.000000001", "0.0"] {
            assert_eq!(PointsRate::parse(rate).unwrap().to_string(), rate);
        }
    }

    #[test]
    fn bad_rates_are_refused_with_the_variable_named() {
        for bad in ["", "-0.01", "1e-2", "0,01", "abc", "0.0000000001", ".5"] {
            let error = PointsRate::parse(bad).unwrap_err();
            assert!(error.to_string().starts_with("POINTS_RATE"), "{bad}: {error}");
        }
    }
}
