//! CloudWatch Embedded Metric Format: one JSON line per invocation that CloudWatch Logs turns
//! into metrics, with no API call and no latency on the invocation.
//!
//! In Lambda the line goes to stdout with the logs; locally to stderr, so that `replay`'s and
//! `poll`'s stdout stay their responses.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::batch::BatchReport;

/// Default namespace; `SQS_KIT_METRICS_NAMESPACE` overrides it.
pub const DEFAULT_NAMESPACE: &str = "SqsKit";
/// Default dimension name, whose value is the function name; `SQS_KIT_METRICS_DIMENSION`
/// overrides the name.
pub const DEFAULT_DIMENSION: &str = "FunctionName";

/// A `SQS_KIT_METRICS*` setting CloudWatch would not accept; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidMetricsSetting(String);

/// Where metric lines go, and under which names.
#[derive(Clone, Debug)]
pub struct Metrics {
    namespace: String,
    dimension: String,
    enabled: bool,
}

/// The count metrics, in the order of [`Metrics::document`]'s values.
const COUNTS: [&str; 6] = [
    "RecordsProcessed",
    "RecordsFailedTransient",
    "RecordsFailedPermanent",
    "DuplicatesSkipped",
    "RecordsNotAttempted",
    "RecordsDeadLettered",
];
const BATCH_DURATION: &str = "BatchDuration";
const MAX_MESSAGE_AGE: &str = "MaxMessageAge";

impl Metrics {
    /// The configuration from `SQS_KIT_METRICS*`, checked against what CloudWatch accepts: a
    /// line it cannot extract would be lost without a trace, so a bad value is refused at start.
    pub fn from_env() -> Result<Self, InvalidMetricsSetting> {
        use crate::env;
        let namespace = env::var(env::METRICS_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        check_namespace(&namespace)?;
        let dimension = env::var(env::METRICS_DIMENSION).unwrap_or_else(|| DEFAULT_DIMENSION.to_owned());
        check_dimension(&dimension)?;
        let enabled = match env::var(env::METRICS).as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(InvalidMetricsSetting(format!("{} must be on or off, not {other:?}", env::METRICS))),
        };
        Ok(Self { namespace, dimension, enabled })
    }

    /// The EMF document for one invocation's report, or `None` when metrics are off.
    pub fn document(&self, function_name: &str, report: &BatchReport) -> Option<Value> {
        if !self.enabled {
            return None;
        }
        let totals = report.totals();
        let counts = [
            totals.processed,
            totals.failed_transient,
            totals.failed_permanent,
            totals.duplicates,
            totals.not_attempted,
            totals.dead_lettered,
        ];
        let mut definitions: Vec<Value> = COUNTS.iter().map(|name| json!({"Name": name, "Unit": "Count"})).collect();
        let mut document = Map::new();
        for (name, count) in COUNTS.into_iter().zip(counts) {
            document.insert(name.to_owned(), json!(count));
        }
        definitions.push(json!({"Name": BATCH_DURATION, "Unit": "Milliseconds"}));
        document.insert(BATCH_DURATION.into(), json!(report.elapsed.as_secs_f64() * 1000.0));
        if let Some(age) = report.max_message_age {
            definitions.push(json!({"Name": MAX_MESSAGE_AGE, "Unit": "Milliseconds"}));
            document.insert(MAX_MESSAGE_AGE.into(), json!(age.as_millis() as u64));
        }
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        document.insert(self.dimension.clone(), json!(function_name));
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [[self.dimension]],
                    "Metrics": definitions,
                }],
            }),
        );
        Some(Value::Object(document))
    }
}

/// CloudWatch's rules for a namespace: 1 to 255 characters among letters, digits and `.-_/#: `,
/// not all spaces, and not the `AWS/` prefix that AWS services' namespaces use.
fn check_namespace(namespace: &str) -> Result<(), InvalidMetricsSetting> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
    let valid = namespace.len() <= 255 && namespace.chars().all(allowed) && !namespace.trim().is_empty() && !namespace.starts_with("AWS/");
    match valid {
        true => Ok(()),
        false => Err(InvalidMetricsSetting(format!(
            "{} {namespace:?} is not a CloudWatch namespace: 1 to 255 letters, digits or .-_/#: and spaces, not starting with AWS/",
            crate::env::METRICS_NAMESPACE
        ))),
    }
}

/// CloudWatch's rules for a dimension name (1 to 255 ASCII characters, not all spaces, not
/// starting with `:`), and not a name the document already uses: the function name would
/// overwrite that metric's value.
fn check_dimension(dimension: &str) -> Result<(), InvalidMetricsSetting> {
    let variable = crate::env::METRICS_DIMENSION;
    if dimension.len() > 255 || !dimension.is_ascii() || dimension.trim().is_empty() || dimension.starts_with(':') {
        return Err(InvalidMetricsSetting(format!(
            "{variable} {dimension:?} is not a CloudWatch dimension name: 1 to 255 ASCII characters, not starting with :"
        )));
    }
    if COUNTS.contains(&dimension) || [BATCH_DURATION, MAX_MESSAGE_AGE, "_aws"].contains(&dimension) {
        return Err(InvalidMetricsSetting(format!("{variable} {dimension:?} is the name of a field of the metric line; pick another")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_cloudwatch_accepts_and_refuses() {
        for good in ["SqsKit", "Shop/Orders", "a.b-c_d#e:f g", &"n".repeat(255)] {
            assert!(check_namespace(good).is_ok(), "{good}");
        }
        for bad in ["", "   ", "AWS/Lambda", "shop\norders", "café", &"n".repeat(256)] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_dimension_must_not_overwrite_a_field_of_the_line() {
        assert!(check_dimension("FunctionName").is_ok());
        assert!(check_dimension("Service name").is_ok());
        for bad in ["", " ", ":x", "é", "RecordsProcessed", "BatchDuration", "MaxMessageAge", "_aws", &"d".repeat(256)] {
            assert!(check_dimension(bad).is_err(), "{bad:?}");
        }
    }
}
