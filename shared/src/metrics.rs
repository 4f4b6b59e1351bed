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

/// Where metric lines go, and under which names.
#[derive(Clone, Debug)]
pub struct Metrics {
    namespace: String,
    dimension: String,
    enabled: bool,
}

impl Metrics {
    pub fn from_env() -> Self {
        use crate::env;
        Self {
            namespace: env::var(env::METRICS_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            dimension: env::var(env::METRICS_DIMENSION).unwrap_or_else(|| DEFAULT_DIMENSION.to_owned()),
            enabled: env::var(env::METRICS).is_none_or(|value| value != "off"),
        }
    }

    /// The EMF document for one invocation's report, or `None` when metrics are off.
    pub fn document(&self, function_name: &str, report: &BatchReport) -> Option<Value> {
        if !self.enabled {
            return None;
        }
        let totals = report.totals();
        let counts = [
            ("RecordsProcessed", totals.processed),
            ("RecordsFailedTransient", totals.failed_transient),
            ("RecordsFailedPermanent", totals.failed_permanent),
            ("DuplicatesSkipped", totals.duplicates),
            ("RecordsNotAttempted", totals.not_attempted),
        ];
        let mut definitions: Vec<Value> = counts.iter().map(|(name, _)| json!({"Name": name, "Unit": "Count"})).collect();
        let mut document = Map::new();
        for (name, count) in counts {
            document.insert(name.to_owned(), json!(count));
        }
        definitions.push(json!({"Name": "BatchDuration", "Unit": "Milliseconds"}));
        document.insert("BatchDuration".into(), json!(report.elapsed.as_secs_f64() * 1000.0));
        if let Some(age) = report.max_message_age {
            definitions.push(json!({"Name": "MaxMessageAge", "Unit": "Milliseconds"}));
            document.insert("MaxMessageAge".into(), json!(age.as_millis() as u64));
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
