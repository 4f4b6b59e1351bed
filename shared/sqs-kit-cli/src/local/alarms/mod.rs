//! `sqs-kit local alarms`: the template's CloudWatch alarms, evaluated against what can be
//! observed of the stack `local up` created on a local AWS API.
//!
//! - [`rule`]: CloudWatch's rule (M of N datapoints breaching, missing data), pure.
//! - [`expression`]: the metric math the template uses, pure.
//! - [`observe`]: the datapoints: queue depths and oldest-message ages from the queues, the
//!   embedded metrics from the functions' log lines, and what the state file remembers.
//!
//! The alarms are read from the template with the resolver `local up` uses, and the queues are
//! found under the names `local up` gives them, so both always agree on the stack.

mod expression;
mod observe;
mod rule;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::super::aws::{self, describe};
use super::super::template::{self, scalar_text, truthy, Resolver};
use expression::Expr;
use observe::{Memory, MetricQuery, Observer, Stat};
use rule::{number, Bounds, Comparison, MissingData, Rule, State};
use sqs_kit::output::{print_json, OutputError};
use sqs_kit::runner::BadInput;

#[derive(Debug, Args)]
pub(in super::super) struct AlarmsArgs {
    /// The SAM / CloudFormation template whose AWS::CloudWatch::Alarm resources are evaluated.
    #[arg(long, value_name = "FILE", default_value = "template.yaml")]
    template: PathBuf,
    /// The stack name `local up` was given [default: the stack_name of [default.global.parameters]
    /// in the samconfig.toml next to the template].
    #[arg(long = "stack-name", alias = "stack", value_name = "NAME")]
    stack_name: Option<String>,
    /// Override a template parameter, as given to `local up` (repeatable).
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = super::parameter)]
    parameters: Vec<(String, String)>,
    /// The functions' logs: a file, or a directory of files, whose embedded metric lines (a
    /// line starting with `{` that holds "_aws") give the SqsKit metrics.
    #[arg(long, value_name = "PATH")]
    metrics: Option<PathBuf>,
    /// Where the previous evaluations are kept (queue depths for DIFF, states for `ignore`)
    /// [default: .local/alarms-<stack>.json].
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Evaluate every SECONDS (1 to 3600) until interrupted, as a table.
    #[arg(long, value_name = "SECONDS", value_parser = crate::whole_number(1_u64, 3600))]
    watch: Option<u64>,
}

pub(in super::super) async fn run(args: AlarmsArgs) -> anyhow::Result<ExitCode> {
    if !super::ENDPOINT_VARIABLES.iter().any(|name| std::env::var(name).is_ok_and(|value| !value.is_empty())) {
        return Err(BadInput(
            "AWS_ENDPOINT_URL is not set: local alarms reads the queues `local up` created on a local AWS API (scripts/with-moto starts one)"
                .into(),
        )
        .into());
    }
    let template = template::load(&args.template)?;
    let up = super::UpArgs {
        template: args.template.clone(),
        stack_name: args.stack_name.clone(),
        parameters: args.parameters.clone(),
        max_receive_count: None,
        visibility_timeout: None,
    };
    let stack = super::stack_name(&up)?;
    if let Some(path) = &args.metrics {
        if !path.exists() {
            return Err(BadInput(format!("--metrics {}: no such file or directory", path.display())).into());
        }
    }
    let state_path = args.state.clone().unwrap_or_else(|| Path::new(".local").join(format!("alarms-{stack}.json")));
    let mut memory = Memory::load(&state_path)?;

    let config = aws::config().await;
    let region = config.region().map(|r| r.to_string()).ok_or_else(|| BadInput("no AWS region: set AWS_REGION".into()))?;
    let mut resolver = Resolver::new(&template, stack.clone(), region, &args.parameters)?;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let local = find_resources(&mut resolver, &sqs, &sns, &args.template).await?;
    let alarms = definitions(&resolver);
    if alarms.is_empty() {
        return Err(BadInput(format!("{} declares no AWS::CloudWatch::Alarm that applies", args.template.display())).into());
    }

    let mut block = 0;
    loop {
        let now = aws::now_ms();
        let lines = match &args.metrics {
            Some(path) => Some(observe::read_metric_lines(path)?),
            None => None,
        };
        let mut observer = Observer::new(&sqs, &local, lines, &mut memory, now);
        let mut outcomes = Vec::with_capacity(alarms.len());
        for alarm in &alarms {
            outcomes.push(evaluate(alarm, &mut observer).await?);
        }
        memory.save(&state_path)?;
        let code = if outcomes.iter().any(|o| o.state == State::Alarm) { ExitCode::from(1) } else { ExitCode::SUCCESS };
        let Some(seconds) = args.watch else {
            for (alarm, outcome) in alarms.iter().zip(&outcomes) {
                print_json(&outcome.json(alarm))?;
            }
            return Ok(code);
        };
        block += 1;
        print_table(&stack, now, block, &alarms, &outcomes)?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(code),
        }
    }
}

/// What `local up` created for the stack, found under the names it gives.
pub(super) struct LocalStack {
    /// Queue name → URL.
    pub queues: HashMap<String, String>,
    /// Each function's names, the one its local metric lines carry (the binary's) and the
    /// deployed one: a dimension value that is one of them matches lines with any of them.
    pub functions: Vec<Vec<String>>,
}

async fn find_resources(
    resolver: &mut Resolver<'_>,
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
    template_path: &Path,
) -> anyhow::Result<LocalStack> {
    let mut local = LocalStack { queues: HashMap::new(), functions: Vec::new() };
    let topics = super::list_topics(sns).await?;
    let resources: Vec<(&String, &Value)> = resolver.resources().collect();
    for (id, resource) in resources {
        let kind = resource["Type"].as_str().unwrap_or_default();
        if !resolver.applies(resource).map_err(|e| BadInput(format!("{}: {id}: {e}", template_path.display())))? {
            resolver.skip(id, "its condition is false".into());
            continue;
        }
        let properties = &resource["Properties"];
        match kind {
            "AWS::SQS::Queue" => {
                let fifo = truthy(resolver.resolve(&properties["FifoQueue"]).ok().flatten().as_ref());
                let name = super::resource_name(resolver, id, resource, "QueueName", fifo)?;
                let url = match sqs.get_queue_url().queue_name(&name).send().await {
                    Ok(output) => output.queue_url.unwrap_or_default(),
                    Err(error) if error.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => {
                        return Err(BadInput(format!(
                            "the queue {name} ({id}) does not exist on the local AWS API: run `sqs-kit local up --stack-name {}` first",
                            resolver.stack
                        ))
                        .into())
                    }
                    Err(error) => return Err(anyhow::anyhow!("cannot look up the queue {name}: {}", describe(error))),
                };
                let arn = aws::queue_attributes(sqs, &url).await?.remove("QueueArn").unwrap_or_default();
                resolver.learn_from_arn(&arn);
                let attributes = HashMap::from([
                    ("Arn".to_owned(), Value::from(arn)),
                    ("QueueName".to_owned(), Value::from(name.as_str())),
                    ("QueueUrl".to_owned(), Value::from(url.as_str())),
                ]);
                resolver.created(id, Value::from(url.as_str()), attributes);
                local.queues.insert(name, url);
            }
            "AWS::SNS::Topic" => {
                let fifo = truthy(resolver.resolve(&properties["FifoTopic"]).ok().flatten().as_ref());
                let name = super::resource_name(resolver, id, resource, "TopicName", fifo)?;
                match topics.iter().find(|arn| arn.rsplit(':').next() == Some(name.as_str())) {
                    Some(arn) => {
                        let attributes = HashMap::from([
                            ("TopicArn".to_owned(), Value::from(arn.as_str())),
                            ("TopicName".to_owned(), Value::from(name)),
                        ]);
                        resolver.created(id, Value::from(arn.as_str()), attributes);
                    }
                    None => resolver.skip(id, format!("no topic {name} on the local AWS API")),
                }
            }
            _ => resolver.skip(id, super::skip_reason(kind).to_owned()),
        }
    }
    // A function's Ref is, locally, the name its metric lines carry: the binary's, as `local up`
    // reports it.
    let mut report = super::Report::default();
    super::describe_functions(resolver, &mut report);
    for (id, function) in &report.functions {
        let binary = function["binary"].as_str().unwrap_or(id).to_owned();
        let mut names = vec![binary.clone()];
        names.extend(function["functionName"].as_str().map(str::to_owned));
        resolver.created(id, Value::from(binary), HashMap::new());
        local.functions.push(names);
    }
    Ok(local)
}

/// An alarm of the template, as far as it could be read.
struct Alarm {
    id: String,
    name: String,
    threshold: Option<f64>,
    comparison: Option<String>,
    /// Why it cannot be evaluated: a shape this command does not read, a value that does not
    /// resolve.
    spec: Result<Spec, String>,
}

struct Spec {
    rule: Rule,
    period_s: u64,
    query: Query,
}

enum Query {
    Metric(MetricQuery),
    Math { text: String, expression: Expr, metrics: BTreeMap<String, MetricQuery> },
}

fn definitions(resolver: &Resolver) -> Vec<Alarm> {
    let mut alarms = Vec::new();
    for (id, resource) in resolver.resources() {
        if resource["Type"] != "AWS::CloudWatch::Alarm" || !resolver.applies(resource).unwrap_or(false) {
            continue;
        }
        let properties = &resource["Properties"];
        let text = |name: &str| resolver.resolve_text(&properties[name]).map_err(|e| format!("{name}: {e}"));
        let numeric = |name: &str| text(name).and_then(|t| t.parse::<f64>().map_err(|_| format!("{name}: {t:?} is not a number")));
        alarms.push(Alarm {
            id: id.clone(),
            name: text("AlarmName").unwrap_or_else(|_| id.clone()),
            threshold: numeric("Threshold").ok(),
            comparison: text("ComparisonOperator").ok(),
            spec: spec(resolver, properties, &numeric, &text),
        });
    }
    alarms
}

type Read<'a> = &'a dyn Fn(&str) -> Result<String, String>;

fn spec(resolver: &Resolver, properties: &Value, numeric: &dyn Fn(&str) -> Result<f64, String>, text: Read) -> Result<Spec, String> {
    let comparison = text("ComparisonOperator")?;
    let comparison =
        Comparison::from_name(&comparison).ok_or_else(|| format!("ComparisonOperator {comparison} is not evaluated locally"))?;
    let threshold = numeric("Threshold")?;
    let count = |name: &str| -> Result<usize, String> {
        let n = numeric(name)?;
        (n >= 1.0 && n.fract() == 0.0).then_some(n as usize).ok_or_else(|| format!("{name} {n} is not a whole number from 1"))
    };
    let evaluation_periods = count("EvaluationPeriods")?;
    let datapoints_to_alarm = if properties.get("DatapointsToAlarm").is_some() { count("DatapointsToAlarm")? } else { evaluation_periods };
    if datapoints_to_alarm > evaluation_periods {
        return Err(format!("DatapointsToAlarm {datapoints_to_alarm} is more than EvaluationPeriods {evaluation_periods}"));
    }
    let missing = match properties.get("TreatMissingData") {
        None => MissingData::Missing,
        Some(_) => {
            let name = text("TreatMissingData")?;
            MissingData::from_name(&name).ok_or_else(|| format!("TreatMissingData {name} is not one CloudWatch knows"))?
        }
    };
    let rule = Rule { evaluation_periods, datapoints_to_alarm, threshold, comparison, missing };
    let period = |value: &Value| -> Result<u64, String> {
        let period = resolver.resolve_text(value).map_err(|e| format!("Period: {e}"))?;
        period.parse::<u64>().ok().filter(|p| *p > 0).ok_or_else(|| format!("Period {period:?} is not a number of seconds"))
    };
    if let Some(entries) = properties.get("Metrics") {
        let entries = resolver.resolve(entries).map_err(|e| format!("Metrics: {e}"))?.unwrap_or_default();
        let entries = entries.as_array().ok_or("Metrics is not a list")?;
        let mut metrics = BTreeMap::new();
        let mut periods = Vec::new();
        let mut returned = Vec::new();
        for entry in entries {
            let id = entry["Id"].as_str().ok_or("a Metrics entry has no Id")?.to_owned();
            if let Some(stat) = entry.get("MetricStat") {
                let metric = &stat["Metric"];
                periods.push(period(&stat["Period"])?);
                let stat = stat["Stat"].as_str().ok_or_else(|| format!("{id}: MetricStat has no Stat"))?;
                metrics.insert(id.clone(), metric_query(metric, stat).map_err(|e| format!("{id}: {e}"))?);
            }
            if let Some(expression) = entry.get("Expression") {
                if let Some(p) = entry.get("Period") {
                    periods.push(period(p)?);
                }
                let returns = entry.get("ReturnData").is_none_or(|r| truthy(Some(r)));
                if returns {
                    returned.push(scalar_text(expression).map_err(|e| format!("{id}: Expression: {e}"))?);
                }
            }
        }
        let [text] = <[String; 1]>::try_from(returned).map_err(|_| "Metrics must have exactly one Expression with ReturnData true")?;
        let expression = expression::parse(&text).map_err(|why| format!("the expression {text:?}: {why}"))?;
        for id in expression.metrics() {
            if !metrics.contains_key(id) {
                return Err(format!("the expression {text:?} reads {id}, which is not among the alarm's Metrics"));
            }
        }
        let period_s = *periods.first().ok_or("Metrics has no MetricStat")?;
        if periods.iter().any(|p| *p != period_s) {
            return Err("the metrics have different periods, which this evaluator does not combine".into());
        }
        return Ok(Spec { rule, period_s, query: Query::Math { text, expression, metrics } });
    }
    let metric = json!({
        "Namespace": properties["Namespace"],
        "MetricName": properties["MetricName"],
        "Dimensions": properties.get("Dimensions").cloned().unwrap_or(json!([])),
        "Statistic": properties["Statistic"],
        "ExtendedStatistic": properties["ExtendedStatistic"],
    });
    let resolved = resolver.resolve(&metric)?.unwrap_or_default();
    let stat = match (resolved.get("Statistic").filter(|s| !s.is_null()), resolved.get("ExtendedStatistic").filter(|s| !s.is_null())) {
        (Some(stat), _) | (None, Some(stat)) => scalar_text(stat)?,
        (None, None) => return Err("the alarm has neither Statistic nor ExtendedStatistic".into()),
    };
    Ok(Spec { rule, period_s: period(&properties["Period"])?, query: Query::Metric(metric_query(&resolved, &stat)?) })
}

/// A metric (`Namespace`, `MetricName`, `Dimensions`) with its statistic.
fn metric_query(metric: &Value, stat: &str) -> Result<MetricQuery, String> {
    let field = |name: &str| metric[name].as_str().map(str::to_owned).ok_or_else(|| format!("no {name}"));
    let mut dimensions = BTreeMap::new();
    for dimension in metric["Dimensions"].as_array().into_iter().flatten() {
        let name = dimension["Name"].as_str().ok_or("a dimension without Name")?;
        let value = scalar_text(&dimension["Value"]).map_err(|e| format!("dimension {name}: {e}"))?;
        dimensions.insert(name.to_owned(), value);
    }
    Ok(MetricQuery { namespace: field("Namespace")?, name: field("MetricName")?, dimensions, stat: Stat::parse(stat)? })
}

/// An alarm's state after one evaluation.
struct Outcome {
    state: State,
    value: Option<f64>,
    reason: String,
}

impl Outcome {
    fn json(&self, alarm: &Alarm) -> Value {
        json!({
            "name": alarm.name,
            "logicalId": alarm.id,
            "state": self.state.name(),
            "value": self.value,
            "threshold": alarm.threshold,
            "comparison": alarm.comparison,
            "reason": self.reason,
        })
    }
}

async fn evaluate(alarm: &Alarm, observer: &mut Observer<'_>) -> anyhow::Result<Outcome> {
    let spec = match &alarm.spec {
        Ok(spec) => spec,
        Err(why) => return Ok(Outcome { state: State::InsufficientData, value: None, reason: why.clone() }),
    };
    let periods = spec.rule.evaluation_periods + 1;
    let mut unobserved = Vec::new();
    let points = match &spec.query {
        Query::Metric(query) => {
            let observed = observer.series(query, spec.period_s, periods).await?;
            unobserved.extend(observed.unobserved);
            observed.points
        }
        Query::Math { text, expression, metrics } => {
            let mut series = HashMap::new();
            for (id, query) in metrics {
                let observed = observer.series(query, spec.period_s, periods).await?;
                unobserved.extend(observed.unobserved);
                series.insert(id.clone(), observed.points);
            }
            match expression.evaluate(&series, periods) {
                Ok(points) => points,
                Err(why) => {
                    return Ok(Outcome { state: State::InsufficientData, value: None, reason: format!("the expression {text:?}: {why}") })
                }
            }
        }
    };
    let current = observer.memory.state(&alarm.name);
    let decision = spec.rule.decide(&points, current);
    observer.memory.set_state(&alarm.name, decision.state);
    let window = &points[1..];
    let shown: Vec<String> = window.iter().map(|p| p.map_or("-".to_owned(), |b| b.to_string())).collect();
    let rule = &spec.rule;
    let counted = format!(
        "{} of the last {} datapoints [{}] {} {} ({} needed, {} s periods, missing data: {})",
        decision.breaching,
        rule.evaluation_periods,
        shown.join(", "),
        rule.comparison.symbol(),
        number(rule.threshold),
        rule.datapoints_to_alarm,
        spec.period_s,
        rule.missing.name()
    );
    unobserved.sort();
    unobserved.dedup();
    let reason = if decision.undecided {
        format!("{}; {counted}", unobserved.join("; "))
    } else if decision.kept {
        format!("not enough datapoints to change state: TreatMissingData ignore keeps {}; {counted}", decision.state.name())
    } else if decision.present == 0 && decision.state == State::InsufficientData {
        format!("no datapoint in the last {} periods of {} s; {counted}", rule.evaluation_periods, spec.period_s)
    } else if unobserved.is_empty() {
        counted
    } else {
        format!("{counted}; not observable locally, but not needed to decide: {}", unobserved.join("; "))
    };
    let value = window.last().copied().flatten().and_then(Bounds::value);
    Ok(Outcome { state: decision.state, value, reason })
}

/// One refresh of `--watch`: a header line, then one row per alarm.
fn print_table(stack: &str, now: i64, block: usize, alarms: &[Alarm], outcomes: &[Outcome]) -> Result<(), OutputError> {
    let count = |state: State| outcomes.iter().filter(|o| o.state == state).count();
    let mut text = format!(
        "== {} stack {stack} (refresh {block}): {} ALARM, {} OK, {} INSUFFICIENT_DATA\n",
        aws::rfc3339_ms(now),
        count(State::Alarm),
        count(State::Ok),
        count(State::InsufficientData)
    );
    let rows: Vec<[String; 4]> = alarms
        .iter()
        .zip(outcomes)
        .map(|(alarm, outcome)| {
            let threshold = match (&alarm.spec, alarm.threshold) {
                (Ok(spec), Some(threshold)) => format!("{} {}", spec.rule.comparison.symbol(), number(threshold)),
                (_, Some(threshold)) => number(threshold),
                _ => "-".into(),
            };
            [outcome.state.name().to_owned(), outcome.value.map_or("-".into(), number), threshold, alarm.name.clone()]
        })
        .collect();
    let header = ["STATE".to_owned(), "VALUE".to_owned(), "THRESHOLD".to_owned(), "ALARM".to_owned()];
    let widths: Vec<usize> = (0..4).map(|i| rows.iter().chain([&header]).map(|row| row[i].chars().count()).max().unwrap_or(0)).collect();
    for (row, reason) in [(&header, "REASON")].into_iter().chain(rows.iter().zip(outcomes.iter().map(|o| o.reason.as_str()))) {
        for (cell, width) in row.iter().zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        text.push_str(reason);
        text.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).map_err(OutputError::Write)
}
