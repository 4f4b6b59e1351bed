//! The datapoints of the alarms' metrics, as far as a local AWS API and the functions' logs show
//! them.
//!
//! Periods end at the time of evaluation (CloudWatch aligns them to the clock; locally, with
//! data a moment old, a window ending now keeps the latest lines in the latest period).
//!
//! - `AWS/SQS` depths (`ApproximateNumberOfMessagesVisible`, `NotVisible`, `Delayed`) from
//!   GetQueueAttributes, one sample per evaluation, kept in the state file so that later
//!   evaluations (and `--watch` refreshes) see earlier periods; a period without a sample has
//!   the depth of the one before. Before its first sample a queue counts as empty, as `local
//!   up` created it: the first evaluation's DIFF is the depth itself.
//! - `ApproximateAgeOfOldestMessage`, which the API does not give, from the oldest
//!   `SentTimestamp` among the queue's messages, received and made visible again at once as
//!   `dlq peek` does. Not on a queue with a redrive policy that holds messages: each receive
//!   counts toward its `maxReceiveCount`, and would move them to the DLQ.
//! - The embedded metrics (`SqsKit` and any other namespace of the lines) from the EMF lines of
//!   the `--metrics` logs, by their `_aws.Timestamp`.
//! - Everything else (Lambda's, SNS's, SQS's `NumberOfMessagesSent`, which the messages still in
//!   a queue cannot count) is not observable: its datapoints are unknown, `[0, ∞)`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{json, Value};

use super::super::super::aws;
use super::super::super::dlq;
use super::rule::{Bounds, Datapoint, State};
use super::LocalStack;
use sqs_kit::runner::BadInput;

/// Messages read at most to find a queue's oldest: a DLQ deeper than this has an age at least
/// that of the oldest among them.
const AGE_SCAN: usize = 1000;

/// How a metric's samples in one period become its datapoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Stat {
    Sum,
    Maximum,
    Minimum,
    Average,
    SampleCount,
    /// `p99`, `p99.9`: the value at that percentile (nearest rank).
    Percentile(f64),
}

impl Stat {
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "Sum" => Stat::Sum,
            "Maximum" => Stat::Maximum,
            "Minimum" => Stat::Minimum,
            "Average" => Stat::Average,
            "SampleCount" => Stat::SampleCount,
            other => match other.strip_prefix('p').and_then(|p| p.parse::<f64>().ok()).filter(|p| (0.0..=100.0).contains(p)) {
                Some(p) => Stat::Percentile(p),
                None => return Err(format!("the statistic {other} is not evaluated locally")),
            },
        })
    }

    fn of(self, values: &mut [f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let sum: f64 = values.iter().sum();
        Some(match self {
            Stat::Sum => sum,
            Stat::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Stat::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
            Stat::Average => sum / values.len() as f64,
            Stat::SampleCount => values.len() as f64,
            Stat::Percentile(p) => {
                values.sort_by(f64::total_cmp);
                let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
                values[rank.clamp(1, values.len()) - 1]
            }
        })
    }
}

/// A metric an alarm reads, with its statistic.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct MetricQuery {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    pub stat: Stat,
}

impl MetricQuery {
    /// The series' name in the state file: its samples are raw, whatever the statistic.
    fn key(&self) -> String {
        let dimensions: Vec<String> = self.dimensions.iter().map(|(name, value)| format!("{name}={value}")).collect();
        format!("{} {} {}", self.namespace, self.name, dimensions.join(","))
    }
}

/// The datapoints of a metric over the periods asked for (oldest first), and why, if they are
/// not observed.
pub(super) struct Observed {
    pub points: Vec<Datapoint>,
    pub unobserved: Option<String>,
}

impl Observed {
    fn unobservable(periods: usize, why: String) -> Self {
        Observed { points: vec![Some(Bounds::unobserved()); periods], unobserved: Some(why) }
    }
}

/// Samples `(epoch ms, value)` by period: index 0 the oldest of `periods`, the last one the
/// period that ends `now`. Samples after `now` count in the last period.
fn bucket(samples: impl IntoIterator<Item = (i64, f64)>, now: i64, period_ms: i64, periods: usize, stat: Stat) -> Vec<Datapoint> {
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); periods];
    for (time, value) in samples {
        let age = (now - time).max(0) / period_ms;
        if let Some(index) = usize::try_from(age).ok().filter(|age| *age < periods).map(|age| periods - 1 - age) {
            values[index].push(value);
        }
    }
    values.iter_mut().map(|values| stat.of(values).map(Bounds::exact)).collect()
}

/// What earlier evaluations left: depth samples, and each alarm's last state.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Memory {
    samples: BTreeMap<String, Vec<(i64, f64)>>,
    states: BTreeMap<String, State>,
    /// How far back each series is read this time: older samples are dropped on save, but for
    /// the latest of them.
    horizon: HashMap<String, i64>,
}

impl Memory {
    /// The state file; none yet is an empty memory.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Memory::default()),
            Err(error) => return Err(BadInput(format!("cannot read the state file {}: {error}", path.display())).into()),
        };
        let bad =
            |why: &str| BadInput(format!("{} is not a state file of local alarms ({why}): delete it to start afresh", path.display()));
        let document: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        let mut memory = Memory::default();
        for (key, samples) in document["samples"].as_object().into_iter().flatten() {
            let samples = samples.as_array().ok_or_else(|| bad("samples"))?;
            let pairs = samples.iter().map(|s| Some((s.get(0)?.as_i64()?, s.get(1)?.as_f64()?))).collect::<Option<Vec<_>>>();
            memory.samples.insert(key.clone(), pairs.ok_or_else(|| bad("a sample is not [time, value]"))?);
        }
        for (alarm, state) in document["states"].as_object().into_iter().flatten() {
            let state = state.as_str().and_then(State::from_name).ok_or_else(|| bad("a state is not OK, ALARM or INSUFFICIENT_DATA"))?;
            memory.states.insert(alarm.clone(), state);
        }
        Ok(memory)
    }

    /// Writes the memory (in a file beside, then renamed: an interrupted save leaves the old one).
    pub fn save(&mut self, path: &Path) -> anyhow::Result<()> {
        for (key, samples) in &mut self.samples {
            if let Some(horizon) = self.horizon.get(key) {
                let keep_from = samples.iter().rposition(|(time, _)| time < horizon).unwrap_or(0);
                samples.drain(..keep_from);
            }
        }
        let document = json!({
            "samples": self.samples.iter().map(|(k, s)| (k.clone(), json!(s))).collect::<serde_json::Map<_, _>>(),
            "states": self.states.iter().map(|(a, s)| (a.clone(), json!(s.name()))).collect::<serde_json::Map<_, _>>(),
        });
        let fail = |e: std::io::Error| anyhow::anyhow!("cannot write the state file {}: {e}", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let partial = path.with_extension("partial");
        std::fs::write(&partial, document.to_string()).map_err(fail)?;
        std::fs::rename(&partial, path).map_err(fail)
    }

    pub fn state(&self, alarm: &str) -> Option<State> {
        self.states.get(alarm).copied()
    }

    pub fn set_state(&mut self, alarm: &str, state: State) {
        self.states.insert(alarm.to_owned(), state);
    }
}

/// One embedded metric value of a log line.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct MetricLine {
    namespace: String,
    name: String,
    dimensions: BTreeMap<String, String>,
    time: i64,
    values: Vec<f64>,
}

/// The embedded metric lines of a log file, or of every file of a directory.
pub(super) fn read_metric_lines(path: &Path) -> anyhow::Result<Vec<MetricLine>> {
    let unreadable = |path: &Path, e: std::io::Error| BadInput(format!("--metrics: cannot read {}: {e}", path.display()));
    let files = if path.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| unreadable(path, e))? {
            let file = entry.map_err(|e| unreadable(path, e))?.path();
            if file.is_file() {
                files.push(file);
            }
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut lines = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| unreadable(&file, e))?;
        // A log may hold anything; only lines that are EMF documents count.
        for line in String::from_utf8_lossy(&bytes).lines() {
            let line = line.trim_start();
            if line.starts_with('{') && line.contains("\"_aws\"") {
                lines.extend(serde_json::from_str::<Value>(line).map(|document| parse_document(&document)).unwrap_or_default());
            }
        }
    }
    Ok(lines)
}

/// The metric values an EMF document declares: per directive, per dimension set, per metric.
fn parse_document(document: &Value) -> Vec<MetricLine> {
    let Some(time) = document["_aws"]["Timestamp"].as_i64() else { return Vec::new() };
    let mut lines = Vec::new();
    for directive in document["_aws"]["CloudWatchMetrics"].as_array().into_iter().flatten() {
        let Some(namespace) = directive["Namespace"].as_str() else { continue };
        let sets: Vec<Vec<&str>> = match directive["Dimensions"].as_array() {
            Some(sets) if !sets.is_empty() => {
                sets.iter().map(|set| set.as_array().into_iter().flatten().filter_map(Value::as_str).collect()).collect()
            }
            _ => vec![Vec::new()],
        };
        for metric in directive["Metrics"].as_array().into_iter().flatten() {
            let Some(name) = metric["Name"].as_str() else { continue };
            let values: Vec<f64> = match &document[name] {
                Value::Array(items) => items.iter().filter_map(Value::as_f64).collect(),
                value => value.as_f64().into_iter().collect(),
            };
            for set in &sets {
                let dimensions: Option<BTreeMap<String, String>> =
                    set.iter().map(|d| Some((d.to_string(), document[*d].as_str()?.to_owned()))).collect();
                if let Some(dimensions) = dimensions {
                    lines.push(MetricLine {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        dimensions,
                        time,
                        values: values.clone(),
                    });
                }
            }
        }
    }
    lines
}

/// One evaluation's view of the stack: each queue read once, its depths recorded once.
pub(super) struct Observer<'a> {
    sqs: &'a aws_sdk_sqs::Client,
    local: &'a LocalStack,
    lines: Option<Vec<MetricLine>>,
    pub memory: &'a mut Memory,
    now: i64,
    /// Each queue's attributes, read once per evaluation.
    queues: HashMap<String, HashMap<String, String>>,
    ages: HashMap<String, Result<f64, String>>,
    recorded: Vec<String>,
}

impl<'a> Observer<'a> {
    pub fn new(
        sqs: &'a aws_sdk_sqs::Client,
        local: &'a LocalStack,
        lines: Option<Vec<MetricLine>>,
        memory: &'a mut Memory,
        now: i64,
    ) -> Self {
        Observer { sqs, local, lines, memory, now, queues: HashMap::new(), ages: HashMap::new(), recorded: Vec::new() }
    }

    pub async fn series(&mut self, query: &MetricQuery, period_s: u64, periods: usize) -> anyhow::Result<Observed> {
        let period_ms = i64::try_from(period_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        if query.namespace == "AWS/SQS" {
            return self.queue_series(query, period_ms, periods).await;
        }
        if query.namespace.starts_with("AWS/") {
            return Ok(Observed::unobservable(periods, format!("{} {} is not observable locally", query.namespace, query.name)));
        }
        let Some(lines) = &self.lines else {
            return Ok(Observed::unobservable(
                periods,
                format!("the {} metrics: no --metrics PATH given (the functions' logs, with their metric lines)", query.namespace),
            ));
        };
        let matches = |line: &&MetricLine| {
            line.namespace == query.namespace
                && line.name == query.name
                && line.dimensions.len() == query.dimensions.len()
                && query.dimensions.iter().all(|(name, value)| line.dimensions.get(name).is_some_and(|seen| self.same_name(value, seen)))
        };
        let samples = lines.iter().filter(matches).flat_map(|line| line.values.iter().map(|v| (line.time, *v)));
        Ok(Observed { points: bucket(samples, self.now, period_ms, periods, query.stat), unobserved: None })
    }

    /// A dimension value of the alarm and one of a metric line name the same thing: equal, or
    /// two names of one function (locally the binary's, in AWS the deployed one).
    fn same_name(&self, alarm: &str, line: &str) -> bool {
        alarm == line || self.local.functions.iter().any(|names| names.iter().any(|n| n == alarm) && names.iter().any(|n| n == line))
    }

    async fn queue_series(&mut self, query: &MetricQuery, period_ms: i64, periods: usize) -> anyhow::Result<Observed> {
        let what = format!("{} {}", query.namespace, query.name);
        let queue = match (query.dimensions.get("QueueName"), query.dimensions.len()) {
            (Some(queue), 1) => queue.clone(),
            _ => return Ok(Observed::unobservable(periods, format!("{what} is observed locally only by its QueueName dimension alone"))),
        };
        let Some(url) = self.local.queues.get(&queue).cloned() else {
            return Ok(Observed::unobservable(periods, format!("{what}: {queue} is not a queue of this stack")));
        };
        let value = match query.name.as_str() {
            "ApproximateNumberOfMessagesVisible" => self.depth(&url, "ApproximateNumberOfMessages").await?,
            "ApproximateNumberOfMessagesNotVisible" => self.depth(&url, "ApproximateNumberOfMessagesNotVisible").await?,
            "ApproximateNumberOfMessagesDelayed" => self.depth(&url, "ApproximateNumberOfMessagesDelayed").await?,
            "ApproximateAgeOfOldestMessage" => self.age(&url).await?,
            "NumberOfMessagesSent" => Err(format!(
                "{what} of {queue} is not observable locally: SQS gives no count of the messages sent, and those still in the queue miss the ones already deleted"
            )),
            _ => Err(format!("{what} is not observable locally")),
        };
        let value = match value {
            Ok(value) => value,
            Err(why) => return Ok(Observed::unobservable(periods, why)),
        };
        let key = query.key();
        let depth = query.name.starts_with("ApproximateNumberOfMessages");
        let samples = self.memory.samples.entry(key.clone()).or_insert_with(|| {
            // A queue is empty until its first sample: local up created it so.
            if depth {
                vec![(self.now - period_ms, 0.0)]
            } else {
                Vec::new()
            }
        });
        if !self.recorded.contains(&key) {
            samples.push((self.now, value));
            self.recorded.push(key.clone());
        }
        let horizon = self.now - period_ms.saturating_mul(periods as i64);
        let entry = self.memory.horizon.entry(key.clone()).or_insert(horizon);
        *entry = (*entry).min(horizon);
        let samples = &self.memory.samples[&key];
        // The latest sample before the window stands for the period just before it, so that
        // DIFF has its previous value after a pause between evaluations.
        let window_start = self.now - period_ms.saturating_mul(periods as i64 - 1);
        let before = samples.iter().rev().find(|(time, _)| *time <= window_start).map(|(_, v)| (window_start - 1, *v));
        let in_window = samples.iter().copied().filter(|(time, _)| *time > window_start);
        let mut points = bucket(before.into_iter().chain(in_window), self.now, period_ms, periods, query.stat);
        if depth {
            // A depth holds between two samples: SQS publishes it every minute while a queue
            // holds messages, and locally it is sampled only at each evaluation.
            let mut last = None;
            for point in &mut points {
                *point = point.or(last);
                last = *point;
            }
        }
        Ok(Observed { points, unobserved: None })
    }

    async fn attributes(&mut self, url: &str) -> anyhow::Result<&HashMap<String, String>> {
        if !self.queues.contains_key(url) {
            let attributes = aws::queue_attributes(self.sqs, url).await?;
            self.queues.insert(url.to_owned(), attributes);
        }
        Ok(&self.queues[url])
    }

    async fn depth(&mut self, url: &str, attribute: &str) -> anyhow::Result<Result<f64, String>> {
        let attributes = self.attributes(url).await?;
        Ok(attributes.get(attribute).and_then(|n| n.parse::<f64>().ok()).ok_or_else(|| format!("the queue {url} reports no {attribute}")))
    }

    async fn age(&mut self, url: &str) -> anyhow::Result<Result<f64, String>> {
        if let Some(age) = self.ages.get(url) {
            return Ok(age.clone());
        }
        let attributes = self.attributes(url).await?.clone();
        let count = |name: &str| attributes.get(name).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        let visible = count("ApproximateNumberOfMessages");
        let hidden = count("ApproximateNumberOfMessagesNotVisible") + count("ApproximateNumberOfMessagesDelayed");
        let age = if visible == 0 && hidden == 0 {
            Ok(0.0)
        } else if visible == 0 {
            Err(format!("the age of the oldest message in {url} is not observable now: its {hidden} message(s) are in flight or delayed"))
        } else if attributes.get("RedrivePolicy").is_some_and(|policy| !policy.is_empty()) {
            Err(format!(
                "the age of the oldest message in {url} is not observed locally while it holds messages: reading it receives them, \
                 which counts toward the queue's maxReceiveCount and would move them to its DLQ"
            ))
        } else {
            self.oldest(url).await?
        };
        self.ages.insert(url.to_owned(), age.clone());
        Ok(age)
    }

    /// The age in seconds of the oldest message, received and made visible again at once.
    async fn oldest(&self, url: &str) -> anyhow::Result<Result<f64, String>> {
        let mut held: BTreeMap<String, String> = BTreeMap::new();
        let mut oldest: Option<i64> = None;
        let scanned = async {
            while held.len() < AGE_SCAN {
                let mut new = 0;
                for message in dlq::receive(self.sqs, url, AGE_SCAN - held.len()).await? {
                    let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else { continue };
                    new += usize::from(held.insert(id.to_owned(), receipt.to_owned()).is_none());
                    let sent =
                        dlq::system_attribute(&message, &MessageSystemAttributeName::SentTimestamp).and_then(|t| t.parse::<i64>().ok());
                    oldest = oldest.into_iter().chain(sent).min();
                }
                if new == 0 {
                    break;
                }
            }
            anyhow::Ok(())
        }
        .await;
        let restored = dlq::restore(self.sqs, url, &held).await;
        scanned?;
        restored?;
        Ok(oldest
            .map(|sent| (self.now - sent).max(0) as f64 / 1000.0)
            .ok_or_else(|| format!("no message of {url} could be received to read its age")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fall_in_the_period_that_holds_them() {
        let now = 1_000_000;
        let samples = [(now, 1.0), (now - 59_999, 2.0), (now - 60_000, 4.0), (now - 179_999, 8.0), (now - 180_000, 16.0), (now + 5, 32.0)];
        assert_eq!(
            bucket(samples, now, 60_000, 3, Stat::Sum),
            [Some(Bounds::exact(8.0)), Some(Bounds::exact(4.0)), Some(Bounds::exact(35.0))]
        );
        assert_eq!(bucket([(now, 3.0), (now, 1.0)], now, 60_000, 2, Stat::Maximum), [None, Some(Bounds::exact(3.0))]);
        let mut values = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(Stat::Percentile(99.0).of(&mut values), Some(5.0));
        assert_eq!(Stat::Percentile(50.0).of(&mut values), Some(3.0));
        assert_eq!(Stat::Average.of(&mut values), Some(3.0));
        assert_eq!(Stat::SampleCount.of(&mut []), None);
        assert_eq!(Stat::parse("p99.9"), Ok(Stat::Percentile(99.9)));
        assert_eq!(Stat::parse("tm99").unwrap_err(), "the statistic tm99 is not evaluated locally");
    }

    #[test]
    fn metric_lines_are_read_by_their_declarations() {
        let document = json!({
            "_aws": {"Timestamp": 1000, "CloudWatchMetrics": [{
                "Namespace": "SqsKit",
                "Dimensions": [["FunctionName"], []],
                "Metrics": [{"Name": "RecordsFailedPermanent", "Unit": "Count"}, {"Name": "BatchDuration"}, {"Name": "Absent"}],
            }]},
            "FunctionName": "email",
            "RecordsFailedPermanent": 2,
            "BatchDuration": [1.5, 2.5],
        });
        let lines = parse_document(&document);
        let by = |name: &str, dimensions: usize| lines.iter().find(|l| l.name == name && l.dimensions.len() == dimensions).unwrap();
        assert_eq!(by("RecordsFailedPermanent", 1).values, [2.0]);
        assert_eq!(by("RecordsFailedPermanent", 1).dimensions["FunctionName"], "email");
        assert_eq!(by("BatchDuration", 0).values, [1.5, 2.5]);
        assert!(by("Absent", 1).values.is_empty());
        assert!(parse_document(&json!({"_aws": {"CloudWatchMetrics": []}})).is_empty(), "no Timestamp, no datapoint");
    }

    #[test]
    fn the_memory_survives_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("alarms.json");
        let mut memory = Memory::default();
        memory.samples.insert("AWS/SQS depth q".into(), vec![(1, 0.0), (2, 1.0), (3, 1.0), (10, 2.0)]);
        memory.horizon.insert("AWS/SQS depth q".into(), 5);
        memory.set_state("a", State::Alarm);
        memory.save(&path).unwrap();
        let loaded = Memory::load(&path).unwrap();
        // Only the latest sample before the horizon stays, for DIFF's previous value.
        assert_eq!(loaded.samples["AWS/SQS depth q"], [(3, 1.0), (10, 2.0)]);
        assert_eq!(loaded.state("a"), Some(State::Alarm));
        std::fs::write(&path, "[").unwrap();
        assert!(Memory::load(&path).unwrap_err().to_string().contains("delete it to start afresh"));
    }
}
