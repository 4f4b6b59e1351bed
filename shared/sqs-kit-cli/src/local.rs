//! `sqs-kit local up`: create on a local AWS API (moto, LocalStack, ...) the topology that
//! `template.yaml` declares, read from the template itself so that local and deployed topology
//! cannot drift apart.
//!
//! Created: SNS topics, SQS queues (with every attribute the template sets: FIFO, visibility
//! timeout, retention, redrive policy, redrive allow policy, ...), queue policies, SNS
//! subscriptions (raw delivery, redrive policy, filter policy) and DynamoDB tables (key schema,
//! billing mode, TTL). Skipped, and listed as such: what has no meaning on a local API (IAM,
//! KMS, CloudWatch alarms, Lambda functions, log groups) and resources whose condition is false.
//! A property that refers to a skipped resource (a topic's KMS key) is left out and listed.
//!
//! Idempotent: a resource that exists is found and brought to the template's attributes, never
//! created twice. Names: the template's own (`QueueName`, `TopicName`, `TableName`) with
//! `${AWS::StackName}` = `--stack-name`, or else the stack name `sam deploy` would use (in the
//! `samconfig.toml` next to the template); `<stack>-<LogicalId>` where the template sets none.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::aws::{self, describe};
use super::template::{self, scalar_text, truthy, Resolver};
use sqs_kit::output::{note, print_json_pretty, OutputError};
use sqs_kit::runner::BadInput;

// A child of this module, so that it finds the resources under the names `local up` gives them.
mod alarms;

#[derive(Debug, Subcommand)]
pub(super) enum LocalCommand {
    /// Create the template's topics, queues, DLQs, subscriptions and tables on the local AWS
    /// API at AWS_ENDPOINT_URL (idempotent).
    ///
    /// stdout: a JSON object with the topic ARNs, queue URLs, DLQ URLs, table names (by logical
    /// id), the functions' queues, batch sizes, maximum concurrency (null: Lambda's default) and
    /// environment, the template's Outputs, and what was skipped.
    /// stderr: `export NAME=value` lines to paste into a shell, and the `poll --concurrency` that
    /// matches each function's event source mapping.
    Up(UpArgs),
    /// Evaluate the template's CloudWatch alarms against what `local up` created: queue depths
    /// and oldest-message ages from the queues, the functions' embedded metrics from their logs
    /// (--metrics).
    ///
    /// stdout: one JSON line per alarm, {"name", "logicalId", "state" (OK, ALARM or
    /// INSUFFICIENT_DATA), "value" (the latest datapoint), "threshold", "comparison", "reason"};
    /// with --watch, a table per refresh. Exit 1 when an alarm is in ALARM, 0 otherwise.
    /// What cannot be observed locally (Lambda's and SNS's metrics, SQS NumberOfMessagesSent) is
    /// unknown: an alarm that depends on it is INSUFFICIENT_DATA, and its reason says why.
    Alarms(alarms::AlarmsArgs),
}

#[derive(Debug, Args)]
pub(super) struct UpArgs {
    /// The SAM / CloudFormation template.
    #[arg(long, value_name = "FILE", default_value = "template.yaml")]
    template: PathBuf,
    /// The stack name: ${AWS::StackName} in the template's names [default: the stack_name of
    /// [default.global.parameters] in the samconfig.toml next to the template, as SAM reads it].
    #[arg(long = "stack-name", alias = "stack", value_name = "NAME")]
    stack_name: Option<String>,
    /// Override a template parameter (repeatable).
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parameter)]
    parameters: Vec<(String, String)>,
    /// maxReceiveCount of every queue's redrive policy, 1 to 1000 as SQS allows (default: the template's).
    #[arg(long, value_name = "N", value_parser = super::whole_number(1_u32, 1000))]
    max_receive_count: Option<u32>,
    /// VisibilityTimeout of every queue, in seconds, 0 to 43200 (12 h, SQS's maximum) (default: the
    /// template's), e.g. short for tests.
    #[arg(long, value_name = "SECONDS", value_parser = super::whole_number(0_u32, 43_200))]
    visibility_timeout: Option<u32>,
}

fn parameter(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text} is not NAME=VALUE")),
    }
}

/// Variables that point the SDK at a local API.
const ENDPOINT_VARIABLES: [&str; 4] = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL_DYNAMODB"];

/// Queue properties that are queue attributes of the same name (set in a second pass); the
/// policies are JSON documents.
const QUEUE_ATTRIBUTES: [&str; 13] = [
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
];

/// Topic properties that are topic attributes of the same name (set after creation).
const TOPIC_ATTRIBUTES: [&str; 6] =
    ["ContentBasedDeduplication", "DisplayName", "FifoThroughputScope", "KmsMasterKeyId", "SignatureVersion", "TracingConfig"];

/// Subscription properties that are subscription attributes; the policies are JSON documents.
const SUBSCRIPTION_ATTRIBUTES: [&str; 5] = ["RawMessageDelivery", "FilterPolicyScope", "RedrivePolicy", "FilterPolicy", "DeliveryPolicy"];

/// What the run did, printed on stdout.
#[derive(Default)]
struct Report {
    topics: BTreeMap<String, String>,
    queues: BTreeMap<String, String>,
    tables: BTreeMap<String, String>,
    subscriptions: BTreeMap<String, String>,
    functions: BTreeMap<String, Value>,
    outputs: BTreeMap<String, String>,
    created: Vec<String>,
    skipped: Vec<Value>,
    /// Properties left out, per logical id, with the reason.
    ignored: BTreeMap<String, Vec<String>>,
}

impl Report {
    fn ignore(&mut self, id: &str, what: String) {
        self.ignored.entry(id.to_owned()).or_default().push(what);
    }
}

pub(super) async fn run(command: LocalCommand) -> anyhow::Result<ExitCode> {
    match command {
        LocalCommand::Up(args) => up(args).await,
        LocalCommand::Alarms(args) => alarms::run(args).await,
    }
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let Some(endpoint) = ENDPOINT_VARIABLES.iter().find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty())) else {
        return Err(BadInput(
            "AWS_ENDPOINT_URL is not set: local up creates resources on a local AWS API (scripts/with-moto starts one); deploy to AWS with sam deploy".into(),
        )
        .into());
    };
    let template = template::load(&args.template)?;
    let stack = stack_name(&args)?;
    let config = aws::config().await;
    let region = config.region().map(|r| r.to_string()).ok_or_else(|| BadInput("no AWS region: set AWS_REGION".into()))?;
    let mut resolver = Resolver::new(&template, stack, region.clone(), &args.parameters)?;
    let clients = Clients {
        sqs: aws_sdk_sqs::Client::new(&config),
        sns: aws_sdk_sns::Client::new(&config),
        dynamodb: aws_sdk_dynamodb::Client::new(&config),
    };
    let mut report = Report::default();

    // Which resources are created, and in which pass.
    let mut by_type: BTreeMap<&str, Vec<(&String, &Value)>> = BTreeMap::new();
    for (id, resource) in resolver.resources() {
        let kind = resource["Type"].as_str().unwrap_or_default();
        let applies = resolver.applies(resource).map_err(|e| BadInput(format!("{}: {id}: {e}", args.template.display())))?;
        if !applies {
            let condition = resource["Condition"].as_str().unwrap_or_default();
            skip(&mut resolver, &mut report, id, kind, format!("its condition {condition} is false"));
            continue;
        }
        match kind {
            "AWS::SNS::Topic" | "AWS::SQS::Queue" | "AWS::SQS::QueuePolicy" | "AWS::SNS::Subscription" | "AWS::DynamoDB::Table" => {
                by_type.entry(kind).or_default().push((id, resource));
            }
            _ => {
                let reason = skip_reason(kind);
                skip(&mut resolver, &mut report, id, kind, reason.to_owned());
            }
        }
    }
    let of = |kind: &str| by_type.get(kind).cloned().unwrap_or_default();

    for (id, resource) in of("AWS::SNS::Topic") {
        create_topic(&clients, &mut resolver, &mut report, id, resource).await.map_err(|e| e.context(format!("topic {id}")))?;
    }
    for (id, resource) in of("AWS::SQS::Queue") {
        create_queue(&clients, &mut resolver, &mut report, id, resource).await.map_err(|e| e.context(format!("queue {id}")))?;
    }
    for (id, resource) in of("AWS::SQS::Queue") {
        configure_queue(&clients, &resolver, &mut report, &args, id, resource).await.map_err(|e| e.context(format!("queue {id}")))?;
    }
    for (id, resource) in of("AWS::SQS::QueuePolicy") {
        queue_policy(&clients, &mut resolver, &mut report, id, resource).await.map_err(|e| e.context(format!("queue policy {id}")))?;
    }
    for (id, resource) in of("AWS::SNS::Topic") {
        let inline = resource["Properties"]["Subscription"].as_array().cloned().unwrap_or_default();
        for (n, subscription) in inline.iter().enumerate() {
            let name = format!("{id}.Subscription[{n}]");
            let properties = json!({"TopicArn": {"Ref": id}, "Protocol": subscription["Protocol"], "Endpoint": subscription["Endpoint"]});
            subscribe(&clients, &mut resolver, &mut report, &name, &properties)
                .await
                .map_err(|e| e.context(format!("subscription {name}")))?;
        }
    }
    for (id, resource) in of("AWS::SNS::Subscription") {
        subscribe(&clients, &mut resolver, &mut report, id, &resource["Properties"])
            .await
            .map_err(|e| e.context(format!("subscription {id}")))?;
    }
    for (id, resource) in of("AWS::DynamoDB::Table") {
        create_table(&clients, &mut resolver, &mut report, id, resource).await.map_err(|e| e.context(format!("table {id}")))?;
    }
    describe_functions(&resolver, &mut report);
    outputs(&resolver, &mut report);

    print_report(&resolver, &report, &endpoint)?;
    Ok(ExitCode::SUCCESS)
}

struct Clients {
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

/// The stack name: `--stack-name`, or the one `sam deploy` would use, from the samconfig.toml
/// next to the template.
fn stack_name(args: &UpArgs) -> Result<String, BadInput> {
    let (name, origin) = match &args.stack_name {
        Some(name) => (name.clone(), "--stack-name".to_owned()),
        None => {
            let samconfig = args.template.parent().unwrap_or(Path::new("")).join("samconfig.toml");
            (samconfig_stack_name(&samconfig)?, format!("stack_name in {}", samconfig.display()))
        }
    };
    let valid = name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(BadInput(format!("{origin} {name}: a stack name is a letter, then letters, digits and hyphens (128 at most)")));
    }
    Ok(name)
}

/// `stack_name` of `[default.global.parameters]` in a SAM configuration file.
fn samconfig_stack_name(path: &Path) -> Result<String, BadInput> {
    let file = path.display();
    let none = |why: &str| {
        BadInput(format!("no stack name: pass --stack-name NAME, or set stack_name under [default.global.parameters] in {file} ({why})"))
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(none("there is no such file")),
        Err(error) => return Err(BadInput(format!("cannot read {file}: {error}"))),
    };
    let document = toml_edit::Document::parse(text.as_str()).map_err(|error| {
        let line = error.span().map_or(1, |span| text[..span.start].matches('\n').count() + 1);
        BadInput(format!("{file} is not valid TOML: line {line}: {}", error.message()))
    })?;
    let parameters = document.get("default").and_then(|d| d.get("global")).and_then(|g| g.get("parameters"));
    match parameters.and_then(|p| p.get("stack_name")) {
        None => Err(none("it sets none")),
        Some(name) => name.as_str().map(str::to_owned).ok_or_else(|| BadInput(format!("stack_name in {file} is not a string"))),
    }
}

/// The template's values of a resource's attributes: each property named in `attributes`,
/// resolved. A property that refers to what is not created locally is left out and listed, as
/// is any other property but those in `handled`.
fn wanted_attributes(
    resolver: &Resolver,
    report: &mut Report,
    id: &str,
    properties: &Value,
    handled: &[&str],
    attributes: &[&str],
) -> BTreeMap<String, Value> {
    let mut wanted = BTreeMap::new();
    for (property, value) in properties.as_object().into_iter().flatten() {
        if handled.contains(&property.as_str()) {
            continue;
        }
        if !attributes.contains(&property.as_str()) {
            report.ignore(id, format!("{property}: not applied locally"));
            continue;
        }
        match resolver.resolve(value) {
            Ok(Some(resolved)) => {
                wanted.insert(property.clone(), resolved);
            }
            Ok(None) => {}
            Err(reason) => report.ignore(id, format!("{property}: {reason}")),
        }
    }
    wanted
}

/// The wanted attributes that differ from the resource's `current` ones, as the API takes them
/// (a policy document as its JSON text). Not a difference: the same text but for case (`true`
/// and `True`), the same JSON document, or `false` for an attribute the API leaves unset.
fn changed_attributes(
    id: &str,
    wanted: BTreeMap<String, Value>,
    current: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>, BadInput> {
    let mut changed = BTreeMap::new();
    for (name, value) in wanted {
        let text = match value {
            Value::Object(document) => Value::Object(document).to_string(),
            scalar => scalar_text(&scalar).map_err(|e| BadInput(format!("{id}.{name}: {e}")))?,
        };
        let same_json =
            |now: &str| serde_json::from_str::<Value>(now).ok().zip(serde_json::from_str::<Value>(&text).ok()).is_some_and(|(a, b)| a == b);
        let unchanged = match current.get(&name) {
            Some(now) => now.eq_ignore_ascii_case(&text) || same_json(now),
            None => text == "false",
        };
        if !unchanged {
            changed.insert(name, text);
        }
    }
    Ok(changed)
}

/// An SNS topic or subscription, whose attributes are read together and set one at a time.
enum SnsResource<'a> {
    Topic(&'a str),
    Subscription(&'a str),
}

impl SnsResource<'_> {
    fn what(&self) -> String {
        match self {
            SnsResource::Topic(arn) => format!("the topic {arn}"),
            SnsResource::Subscription(arn) => format!("the subscription {arn}"),
        }
    }

    /// Sets the attributes of `wanted` that differ from the resource's.
    async fn apply(&self, sns: &aws_sdk_sns::Client, id: &str, wanted: BTreeMap<String, Value>) -> anyhow::Result<()> {
        let current = match self {
            SnsResource::Topic(arn) => sns.get_topic_attributes().topic_arn(*arn).send().await.map(|o| o.attributes).map_err(describe),
            SnsResource::Subscription(arn) => {
                sns.get_subscription_attributes().subscription_arn(*arn).send().await.map(|o| o.attributes).map_err(describe)
            }
        }
        .map_err(|e| anyhow::anyhow!("cannot read the attributes of {}: {e}", self.what()))?
        .unwrap_or_default();
        for (name, value) in changed_attributes(id, wanted, &current)? {
            match self {
                SnsResource::Topic(arn) => {
                    let request = sns.set_topic_attributes().topic_arn(*arn);
                    request.attribute_name(&name).attribute_value(&value).send().await.map(drop).map_err(describe)
                }
                SnsResource::Subscription(arn) => {
                    let request = sns.set_subscription_attributes().subscription_arn(*arn);
                    request.attribute_name(&name).attribute_value(&value).send().await.map(drop).map_err(describe)
                }
            }
            .map_err(|e| anyhow::anyhow!("cannot set {name} of {}: {e}", self.what()))?;
        }
        Ok(())
    }
}

fn skip_reason(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("AWS::IAM::") => "no access control on a local API",
        k if k.starts_with("AWS::KMS::") => "no encryption keys on a local API",
        k if k.starts_with("AWS::CloudWatch::") => "no metrics or alarms on a local API",
        "AWS::Serverless::Function" | "AWS::Lambda::Function" => "run it locally with `<function> poll --queue-url URL`",
        k if k.starts_with("AWS::Lambda::") => "no Lambda on a local API: `<function> poll` consumes the queue",
        k if k.starts_with("AWS::Logs::") => "local functions log to stderr",
        _ => "local up does not create this type",
    }
}

fn skip(resolver: &mut Resolver, report: &mut Report, id: &str, kind: &str, reason: String) {
    report.skipped.push(json!({"logicalId": id, "type": kind, "reason": reason}));
    resolver.skip(id, reason);
}

/// A property that must resolve (a name, a key schema): a template the local API cannot follow
/// is bad input.
fn required(resolver: &Resolver, id: &str, property: &str, value: &Value) -> anyhow::Result<Value> {
    match resolver.resolve(value) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(BadInput(format!("{id}.{property} is AWS::NoValue")).into()),
        Err(reason) => Err(BadInput(format!("{id}.{property}: {reason}")).into()),
    }
}

/// The resource's name: its name property, or `<stack>-<LogicalId>` (with `.fifo` for FIFO).
fn resource_name(resolver: &Resolver, id: &str, resource: &Value, property: &str, fifo: bool) -> anyhow::Result<String> {
    match resource["Properties"].get(property) {
        Some(value) => Ok(scalar_text(&required(resolver, id, property, value)?).map_err(|e| BadInput(format!("{id}.{property}: {e}")))?),
        None => Ok(format!("{}-{id}{}", resolver.stack, if fifo { ".fifo" } else { "" })),
    }
}

async fn create_topic(
    clients: &Clients,
    resolver: &mut Resolver<'_>,
    report: &mut Report,
    id: &str,
    resource: &Value,
) -> anyhow::Result<()> {
    let properties = &resource["Properties"];
    let fifo = truthy(resolver.resolve(&properties["FifoTopic"]).ok().flatten().as_ref());
    let name = resource_name(resolver, id, resource, "TopicName", fifo)?;
    let existing = list_topics(&clients.sns).await?.into_iter().find(|arn| arn.rsplit(':').next() == Some(name.as_str()));
    let arn = match existing {
        Some(arn) => arn,
        None => {
            let mut request = clients.sns.create_topic().name(&name);
            if fifo {
                request = request.attributes("FifoTopic", "true");
            }
            let output = request.send().await.map_err(|e| anyhow::anyhow!("cannot create the topic {name}: {}", describe(e)))?;
            report.created.push(id.to_owned());
            output.topic_arn().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("CreateTopic returned no ARN for {name}"))?
        }
    };
    resolver.learn_from_arn(&arn);
    let wanted =
        wanted_attributes(resolver, report, id, properties, &["TopicName", "FifoTopic", "Tags", "Subscription"], &TOPIC_ATTRIBUTES);
    SnsResource::Topic(&arn).apply(&clients.sns, id, wanted).await?;
    report.topics.insert(id.to_owned(), arn.clone());
    let attributes = HashMap::from([("TopicArn".to_owned(), Value::from(arn.as_str())), ("TopicName".to_owned(), Value::from(name))]);
    resolver.created(id, Value::from(arn), attributes);
    Ok(())
}

async fn list_topics(sns: &aws_sdk_sns::Client) -> anyhow::Result<Vec<String>> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let output = sns
            .list_topics()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot list the SNS topics: {}", describe(e)))?;
        arns.extend(output.topics().iter().filter_map(|topic| topic.topic_arn().map(str::to_owned)));
        token = output.next_token;
        if token.is_none() {
            return Ok(arns);
        }
    }
}

async fn create_queue(
    clients: &Clients,
    resolver: &mut Resolver<'_>,
    report: &mut Report,
    id: &str,
    resource: &Value,
) -> anyhow::Result<()> {
    let fifo = truthy(resolver.resolve(&resource["Properties"]["FifoQueue"]).ok().flatten().as_ref());
    let name = resource_name(resolver, id, resource, "QueueName", fifo)?;
    let url = match clients.sqs.get_queue_url().queue_name(&name).send().await {
        Ok(output) => output.queue_url.ok_or_else(|| anyhow::anyhow!("GetQueueUrl returned no URL for {name}"))?,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => {
            let mut request = clients.sqs.create_queue().queue_name(&name);
            if fifo {
                request = request.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
            }
            let output = request.send().await.map_err(|e| anyhow::anyhow!("cannot create the queue {name}: {}", describe(e)))?;
            report.created.push(id.to_owned());
            output.queue_url.ok_or_else(|| anyhow::anyhow!("CreateQueue returned no URL for {name}"))?
        }
        Err(error) => return Err(anyhow::anyhow!("cannot look up the queue {name}: {}", describe(error))),
    };
    let attributes = aws::queue_attributes(&clients.sqs, &url).await?;
    let arn = attributes.get("QueueArn").cloned().ok_or_else(|| anyhow::anyhow!("the queue {url} has no QueueArn"))?;
    resolver.learn_from_arn(&arn);
    let attributes = HashMap::from([
        ("Arn".to_owned(), Value::from(arn.as_str())),
        ("QueueName".to_owned(), Value::from(name)),
        ("QueueUrl".to_owned(), Value::from(url.as_str())),
    ]);
    resolver.created(id, Value::from(url), attributes);
    Ok(())
}

/// Sets the queue's attributes from the template (the second pass: a redrive policy needs its
/// DLQ to exist, a redrive allow policy the account id).
async fn configure_queue(
    clients: &Clients,
    resolver: &Resolver<'_>,
    report: &mut Report,
    args: &UpArgs,
    id: &str,
    resource: &Value,
) -> anyhow::Result<()> {
    let url = resolver.resolve_text(&json!({"Ref": id})).map_err(|e| anyhow::anyhow!(e))?;
    let mut wanted =
        wanted_attributes(resolver, report, id, &resource["Properties"], &["QueueName", "FifoQueue", "Tags"], &QUEUE_ATTRIBUTES);
    if let Some(policy) = wanted.get_mut("RedrivePolicy").and_then(Value::as_object_mut) {
        // A parameter reference resolves to text, and SQS wants a number.
        let templated = policy.get("maxReceiveCount").and_then(|c| scalar_text(c).ok()).and_then(|c| c.parse::<u64>().ok());
        if let Some(count) = args.max_receive_count.map(u64::from).or(templated) {
            policy.insert("maxReceiveCount".into(), count.into());
        }
    }
    if let Some(seconds) = args.visibility_timeout {
        wanted.insert("VisibilityTimeout".into(), seconds.into());
    }
    let attributes = changed_attributes(id, wanted, &aws::queue_attributes(&clients.sqs, &url).await?)?;
    if !attributes.is_empty() {
        let mut request = clients.sqs.set_queue_attributes().queue_url(&url);
        for (name, value) in &attributes {
            request = request.attributes(aws_sdk_sqs::types::QueueAttributeName::from(name.as_str()), value);
        }
        request.send().await.map_err(|e| anyhow::anyhow!("cannot set the attributes of {url}: {}", describe(e)))?;
    }
    report.queues.insert(id.to_owned(), url);
    Ok(())
}

async fn queue_policy(
    clients: &Clients,
    resolver: &mut Resolver<'_>,
    report: &mut Report,
    id: &str,
    resource: &Value,
) -> anyhow::Result<()> {
    let properties = &resource["Properties"];
    let queues = match resolver.resolve(&properties["Queues"]) {
        Ok(Some(Value::Array(queues))) => queues,
        Ok(_) => return Err(BadInput(format!("{id}.Queues is not a list of queue URLs")).into()),
        Err(reason) => {
            report.ignore(id, format!("Queues: {reason}"));
            return Ok(());
        }
    };
    let document = match resolver.resolve(&properties["PolicyDocument"]) {
        Ok(Some(document)) => document,
        Ok(None) => return Ok(()),
        Err(reason) => {
            report.ignore(id, format!("PolicyDocument: {reason}"));
            return Ok(());
        }
    };
    for queue in queues {
        let url = scalar_text(&queue).map_err(|e| BadInput(format!("{id}.Queues: {e}")))?;
        clients
            .sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, document.to_string())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot set the policy of {url}: {}", describe(e)))?;
    }
    resolver.created(id, Value::from(format!("{}-{id}", resolver.stack)), HashMap::new());
    Ok(())
}

async fn subscribe(
    clients: &Clients,
    resolver: &mut Resolver<'_>,
    report: &mut Report,
    id: &str,
    properties: &Value,
) -> anyhow::Result<()> {
    let resolved = |name: &str| resolver.resolve_text(&properties[name]);
    // The protocol first: an e-mail subscription is skipped for what it is, not for an address
    // the local run was not given.
    let protocol = match resolved("Protocol") {
        Ok(protocol) if protocol == "sqs" => protocol,
        Ok(protocol) => {
            skip(
                resolver,
                report,
                id,
                "AWS::SNS::Subscription",
                format!("protocol {protocol}: only sqs subscriptions are created locally"),
            );
            return Ok(());
        }
        Err(reason) => {
            skip(resolver, report, id, "AWS::SNS::Subscription", reason);
            return Ok(());
        }
    };
    let (topic, endpoint) = match (resolved("TopicArn"), resolved("Endpoint")) {
        (Ok(topic), Ok(endpoint)) => (topic, endpoint),
        (topic, endpoint) => {
            let reason = [topic.err(), endpoint.err()].into_iter().flatten().collect::<Vec<_>>().join("; ");
            skip(resolver, report, id, "AWS::SNS::Subscription", reason);
            return Ok(());
        }
    };
    let mut existing = None;
    let mut token = None;
    loop {
        let output = clients
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(&topic)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot list the subscriptions of {topic}: {}", describe(e)))?;
        existing = existing.or_else(|| {
            output
                .subscriptions()
                .iter()
                .find(|s| s.protocol() == Some(protocol.as_str()) && s.endpoint() == Some(endpoint.as_str()))
                .and_then(|s| s.subscription_arn().map(str::to_owned))
        });
        token = output.next_token;
        if token.is_none() || existing.is_some() {
            break;
        }
    }
    let arn = match existing {
        Some(arn) => arn,
        None => {
            let output = clients
                .sns
                .subscribe()
                .topic_arn(&topic)
                .protocol(&protocol)
                .endpoint(&endpoint)
                .return_subscription_arn(true)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot subscribe {endpoint} to {topic}: {}", describe(e)))?;
            report.created.push(id.to_owned());
            output.subscription_arn.ok_or_else(|| anyhow::anyhow!("Subscribe returned no subscription ARN"))?
        }
    };
    let wanted =
        wanted_attributes(resolver, report, id, properties, &["TopicArn", "Protocol", "Endpoint", "Region"], &SUBSCRIPTION_ATTRIBUTES);
    SnsResource::Subscription(&arn).apply(&clients.sns, id, wanted).await?;
    report.subscriptions.insert(id.to_owned(), arn.clone());
    resolver.created(id, Value::from(arn), HashMap::new());
    Ok(())
}

async fn create_table(
    clients: &Clients,
    resolver: &mut Resolver<'_>,
    report: &mut Report,
    id: &str,
    resource: &Value,
) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ProvisionedThroughput, ScalarAttributeType, TableStatus,
        TimeToLiveSpecification, TimeToLiveStatus,
    };
    let properties = &resource["Properties"];
    let name = resource_name(resolver, id, resource, "TableName", false)?;
    let dynamodb = &clients.dynamodb;
    let description = match dynamodb.describe_table().table_name(&name).send().await {
        Ok(output) => output.table,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            let definitions = required(resolver, id, "AttributeDefinitions", &properties["AttributeDefinitions"])?;
            let keys = required(resolver, id, "KeySchema", &properties["KeySchema"])?;
            let field = |item: &Value, name: &str| -> anyhow::Result<String> {
                item.get(name)
                    .and_then(|v| scalar_text(v).ok())
                    .ok_or_else(|| BadInput(format!("{id}: an entry without {name}: {item}")).into())
            };
            let mut request = dynamodb.create_table().table_name(&name);
            for definition in definitions.as_array().into_iter().flatten() {
                request = request.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(field(definition, "AttributeName")?)
                        .attribute_type(ScalarAttributeType::from(field(definition, "AttributeType")?.as_str()))
                        .build()?,
                );
            }
            for key in keys.as_array().into_iter().flatten() {
                request = request.key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(field(key, "AttributeName")?)
                        .key_type(KeyType::from(field(key, "KeyType")?.as_str()))
                        .build()?,
                );
            }
            let billing = resolver.resolve_text(&properties["BillingMode"]).unwrap_or_else(|_| "PROVISIONED".into());
            if billing == "PAY_PER_REQUEST" {
                request = request.billing_mode(BillingMode::PayPerRequest);
            } else {
                let throughput = resolver.resolve(&properties["ProvisionedThroughput"]).ok().flatten().unwrap_or(Value::Null);
                let units = |name: &str| throughput.get(name).and_then(|v| scalar_text(v).ok()).and_then(|v| v.parse().ok()).unwrap_or(5);
                request = request.billing_mode(BillingMode::Provisioned).provisioned_throughput(
                    ProvisionedThroughput::builder()
                        .read_capacity_units(units("ReadCapacityUnits"))
                        .write_capacity_units(units("WriteCapacityUnits"))
                        .build()?,
                );
            }
            let output = request.send().await.map_err(|e| anyhow::anyhow!("cannot create the table {name}: {}", describe(e)))?;
            report.created.push(id.to_owned());
            output.table_description
        }
        Err(error) => return Err(anyhow::anyhow!("cannot look up the table {name}: {}", describe(error))),
    };
    let mut status = description.as_ref().and_then(|d| d.table_status().cloned());
    let mut arn = description.as_ref().and_then(|d| d.table_arn().map(str::to_owned));
    for _ in 0..60 {
        if status.is_none() || status == Some(TableStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let table = dynamodb
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot describe {name}: {}", describe(e)))?
            .table;
        status = table.as_ref().and_then(|t| t.table_status().cloned());
        arn = table.as_ref().and_then(|t| t.table_arn().map(str::to_owned)).or(arn);
    }

    if let Some(ttl) = properties.get("TimeToLiveSpecification") {
        match resolver.resolve(ttl) {
            Ok(Some(ttl)) if truthy(ttl.get("Enabled")) => {
                let attribute = ttl
                    .get("AttributeName")
                    .and_then(|a| scalar_text(a).ok())
                    .ok_or_else(|| BadInput(format!("{id}.TimeToLiveSpecification has no AttributeName")))?;
                let current = dynamodb
                    .describe_time_to_live()
                    .table_name(&name)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot read the TTL of {name}: {}", describe(e)))?
                    .time_to_live_description;
                let enabled = current.as_ref().is_some_and(|c| {
                    matches!(c.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling))
                        && c.attribute_name() == Some(attribute.as_str())
                });
                if !enabled {
                    dynamodb
                        .update_time_to_live()
                        .table_name(&name)
                        .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name(&attribute).enabled(true).build()?)
                        .send()
                        .await
                        .map_err(|e| anyhow::anyhow!("cannot enable TTL on {name}: {}", describe(e)))?;
                }
            }
            Ok(_) => {}
            Err(reason) => report.ignore(id, format!("TimeToLiveSpecification: {reason}")),
        }
    }
    for property in properties.as_object().into_iter().flatten().map(|(p, _)| p) {
        let handled =
            ["TableName", "AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput", "TimeToLiveSpecification", "Tags"];
        if !handled.contains(&property.as_str()) {
            report.ignore(id, format!("{property}: not applied locally"));
        }
    }
    report.tables.insert(id.to_owned(), name.clone());
    let mut attributes = HashMap::new();
    if let Some(arn) = arn {
        attributes.insert("Arn".to_owned(), Value::from(arn));
    }
    resolver.created(id, Value::from(name), attributes);
    Ok(())
}

/// What each function would be wired to: its binary, its queue, its environment.
fn describe_functions(resolver: &Resolver, report: &mut Report) {
    let template = resolver.template();
    let globals = template["Globals"]["Function"]["Environment"]["Variables"].as_object().cloned().unwrap_or_default();
    for (id, resource) in resolver.resources() {
        let kind = resource["Type"].as_str().unwrap_or_default();
        if kind != "AWS::Serverless::Function" || !resolver.applies(resource).unwrap_or(false) {
            continue;
        }
        let properties = &resource["Properties"];
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or(id);
        let mut function = Map::new();
        function.insert("binary".into(), binary.into());
        if let Ok(name) = resolver.resolve_text(&properties["FunctionName"]) {
            function.insert("functionName".into(), name.into());
        }
        for (_, event) in properties["Events"].as_object().into_iter().flatten() {
            if event["Type"] != "SQS" {
                continue;
            }
            let queue = resolver.resolve_text(&event["Properties"]["Queue"]).ok();
            let queue_id = queue.as_deref().and_then(|arn| resolver.find_by_attribute("Arn", arn));
            if let Some(url) = queue_id.and_then(|queue_id| report.queues.get(queue_id)) {
                function.insert("queueUrl".into(), url.clone().into());
            }
            if let Ok(size) = resolver.resolve_text(&event["Properties"]["BatchSize"]) {
                function.insert("batchSize".into(), size.parse::<u64>().map(Value::from).unwrap_or(Value::from(size)));
            }
            function.insert("maximumConcurrency".into(), maximum_concurrency(resolver, report, id, &event["Properties"]));
        }
        let mut environment = Map::new();
        let own = properties["Environment"]["Variables"].as_object().cloned().unwrap_or_default();
        for (name, value) in globals.iter().chain(own.iter()) {
            match resolver.resolve_text(value) {
                Ok(value) => {
                    environment.insert(name.clone(), value.into());
                }
                Err(reason) => {
                    environment.remove(name);
                    report.ignore(id, format!("environment {name}: {reason}"));
                }
            }
        }
        function.insert("environment".into(), environment.into());
        report.functions.insert(id.clone(), function.into());
    }
}

/// The event source mapping's `ScalingConfig.MaximumConcurrency`, what `poll --concurrency`
/// matches; null without one, where Lambda's default applies.
fn maximum_concurrency(resolver: &Resolver, report: &mut Report, id: &str, properties: &Value) -> Value {
    let value = &properties["ScalingConfig"]["MaximumConcurrency"];
    if value.is_null() {
        return Value::Null;
    }
    match resolver.resolve_text(value) {
        Ok(text) => text.parse::<u64>().map(Value::from).unwrap_or(Value::from(text)),
        Err(reason) => {
            report.ignore(id, format!("ScalingConfig.MaximumConcurrency: {reason}"));
            Value::Null
        }
    }
}

/// The line of the shell snippet that tells which `poll --concurrency` matches a function.
fn concurrency_line(id: &str, function: &Value) -> String {
    match &function["maximumConcurrency"] {
        Value::Null => format!(
            "# {id}: no ScalingConfig.MaximumConcurrency: Lambda's default applies, as many batches at once as the \
             function's concurrency limit allows (up to 1000); poll --concurrency defaults to 1"
        ),
        maximum => format!("# {id}: ScalingConfig.MaximumConcurrency {maximum}: poll --concurrency {maximum} runs as many batches at once"),
    }
}

fn outputs(resolver: &Resolver, report: &mut Report) {
    for (name, output) in resolver.template()["Outputs"].as_object().into_iter().flatten() {
        if !resolver.applies(output).unwrap_or(false) {
            continue;
        }
        match resolver.resolve_text(&output["Value"]) {
            Ok(value) => {
                report.outputs.insert(name.clone(), value);
            }
            Err(reason) => report.ignore(&format!("Outputs.{name}"), reason),
        }
    }
}

/// `OrdersTopicArn` → `ORDERS_TOPIC_ARN`, `EmailDLQUrl` → `EMAIL_DLQ_URL`.
fn screaming_snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let previous = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if previous.is_ascii_lowercase() || previous.is_ascii_digit() || (previous.is_ascii_uppercase() && next_is_lower) {
                out.push('_');
            }
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn print_report(resolver: &Resolver, report: &Report, endpoint: &str) -> Result<(), OutputError> {
    let (dlqs, queues): (BTreeMap<_, _>, BTreeMap<_, _>) = report.queues.iter().partition(|(id, _)| is_dlq(resolver, id));
    let stdout = json!({
        "stack": resolver.stack,
        "region": resolver.region,
        "accountId": resolver.account,
        "topics": report.topics,
        "queues": queues,
        "dlqs": dlqs,
        "tables": report.tables,
        "subscriptions": report.subscriptions,
        "functions": report.functions,
        "outputs": report.outputs,
        "created": report.created,
        "skipped": report.skipped,
        "ignored": report.ignored,
    });
    print_json_pretty(&stdout)?;

    let mut lines = vec![
        format!("# stack {} on {endpoint}: {} resource(s) created, the rest already existed", resolver.stack, report.created.len()),
        format!("export AWS_ENDPOINT_URL={endpoint}"),
        format!("export AWS_REGION={}", resolver.region),
    ];
    for (name, value) in &report.outputs {
        lines.push(format!("export {}={value}", screaming_snake(name)));
    }
    // The functions' own variables (table names, settings), when every function agrees.
    let mut environment: BTreeMap<String, Option<String>> = BTreeMap::new();
    for function in report.functions.values() {
        for (name, value) in function["environment"].as_object().into_iter().flatten() {
            let value = value.as_str().map(str::to_owned);
            environment
                .entry(name.clone())
                .and_modify(|seen| {
                    if *seen != value {
                        *seen = None
                    }
                })
                .or_insert(value);
        }
    }
    for (name, value) in environment {
        if let Some(value) = value {
            lines.push(format!("export {name}={value}"));
        }
    }
    for (id, function) in &report.functions {
        // Only a function an SQS event source drives has a maximum concurrency, if only null.
        if function.get("maximumConcurrency").is_some() {
            lines.push(concurrency_line(id, function));
        }
    }
    note(&lines.join("\n"));
    Ok(())
}

/// A queue another queue's redrive policy, or a subscription's, sends its failures to.
fn is_dlq(resolver: &Resolver, id: &str) -> bool {
    let Ok(arn) = resolver.resolve_text(&json!({"Fn::GetAtt": [id, "Arn"]})) else { return false };
    resolver.resources().any(|(_, other)| {
        let target = &other["Properties"]["RedrivePolicy"]["deadLetterTargetArn"];
        !target.is_null() && resolver.resolve_text(target).ok().as_deref() == Some(arn.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_become_variable_names() {
        assert_eq!(screaming_snake("OrdersTopicArn"), "ORDERS_TOPIC_ARN");
        assert_eq!(screaming_snake("EmailDLQUrl"), "EMAIL_DLQ_URL");
        assert_eq!(screaming_snake("IdempotencyTableName"), "IDEMPOTENCY_TABLE_NAME");
        assert_eq!(screaming_snake("DeliveryDLQUrl"), "DELIVERY_DLQ_URL");
    }

    #[test]
    fn only_the_attributes_that_differ_are_set() {
        let current = HashMap::from([
            ("RawMessageDelivery".to_owned(), "True".to_owned()),
            ("RedrivePolicy".to_owned(), r#"{"maxReceiveCount":5,"deadLetterTargetArn":"arn:dlq"}"#.to_owned()),
            ("VisibilityTimeout".to_owned(), "30".to_owned()),
        ]);
        let wanted = BTreeMap::from([
            ("RawMessageDelivery".to_owned(), json!(true)),
            ("RedrivePolicy".to_owned(), json!({"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5})),
            ("ContentBasedDeduplication".to_owned(), json!("false")),
            ("VisibilityTimeout".to_owned(), json!(9)),
            ("FilterPolicy".to_owned(), json!({"eventType": ["OrderPlaced"]})),
        ]);
        let changed = changed_attributes("Queue", wanted, &current).unwrap();
        let expected = [("FilterPolicy", r#"{"eventType":["OrderPlaced"]}"#), ("VisibilityTimeout", "9")];
        assert_eq!(changed, expected.map(|(name, value)| (name.to_owned(), value.to_owned())).into());

        let list = changed_attributes("Queue", BTreeMap::from([("DelaySeconds".to_owned(), json!([1]))]), &current).unwrap_err();
        assert_eq!(list.0, "Queue.DelaySeconds: [1] is not a scalar");
    }

    #[test]
    fn only_the_local_resource_types_are_created() {
        assert_eq!(skip_reason("AWS::IAM::Role"), "no access control on a local API");
        assert_eq!(skip_reason("AWS::KMS::Alias"), "no encryption keys on a local API");
        assert!(skip_reason("AWS::Serverless::Function").contains("poll"));
        assert_eq!(skip_reason("AWS::S3::Bucket"), "local up does not create this type");
    }
}
