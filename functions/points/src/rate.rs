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

    /// `floor(total × rate)`; a negative total earns nothing.
    pub fn points_for(&self, total: i64) -> i64 {
        let points = (total.max(0) as i128 * self.numerator) / self.denominator;
        i64::try_from(points).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_percent_of_the_sample_order() {
        assert_eq!(PointsRate::parse("0.01").unwrap().points_for(89_000), 890);
        assert_eq!(PointsRate::parse("0.01").unwrap().points_for(62_099), 620, "floored");
        assert_eq!(PointsRate::parse("0.015").unwrap().points_for(1_000), 15);
        assert_eq!(PointsRate::parse("2").unwrap().points_for(7), 14);
        assert_eq!(PointsRate::parse("0.29").unwrap().points_for(100), 29, "exact where 0.29 * 100.0 is 28.999…");
    }

    #[test]
    fn bad_rates_are_refused_with_the_variable_named() {
        for bad in ["", "-0.01", "1e-2", "0,01", "abc", "0.0000000001", ".5"] {
            let error = PointsRate::parse(bad).unwrap_err();
            assert!(error.to_string().starts_with("POINTS_RATE"), "{bad}: {error}");
        }
    }
}
