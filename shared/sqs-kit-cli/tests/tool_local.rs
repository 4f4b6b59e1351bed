//! `sqs-kit local up` against the local AWS API (moto): template.yaml's topology, created once
//! however often it runs. Skipped without AWS_ENDPOINT_URL (see `e2e::local_aws`).

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_sqs::types::QueueAttributeName;
use e2e::Run;
use serde_json::Value;

fn up(args: &[&str]) -> Run {
    let run = e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), [&["local", "up"], args].concat(), &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    run
}

async fn attributes(sqs: &aws_sdk_sqs::Client, url: &str) -> HashMap<String, String> {
    let output = sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::All).send().await.unwrap();
    output.attributes.unwrap().into_iter().map(|(k, v)| (k.as_str().to_owned(), v)).collect()
}

#[tokio::test]
async fn local_up_creates_the_template_topology_once() {
    let Some(config) = e2e::local_aws().await else { return };
    let stack = e2e::unique_name("up");
    let first = up(&["--stack-name", &stack, "--max-receive-count", "3", "--visibility-timeout", "4"]);
    let created = first.json();

    // Names come from the template: ${AWS::StackName}-email, ...
    let queue = |kind: &str, id: &str| created[kind][id].as_str().unwrap_or_else(|| panic!("no {kind}.{id} in {created}")).to_owned();
    assert!(queue("queues", "EmailQueue").ends_with(&format!("/{stack}-email")));
    assert!(queue("queues", "InventoryQueue").ends_with(&format!("/{stack}-inventory.fifo")));
    assert!(queue("dlqs", "PointsDLQ").ends_with(&format!("/{stack}-points-dlq.fifo")));
    assert!(queue("dlqs", "DeliveryDLQ").ends_with(&format!("/{stack}-delivery-dlq.fifo")));
    assert_eq!(created["queues"].as_object().unwrap().len(), 4, "{created}");
    assert_eq!(created["dlqs"].as_object().unwrap().len(), 5, "{created}");
    let topic = created["topics"]["OrdersTopic"].as_str().unwrap().to_owned();
    assert!(topic.ends_with(&format!(":{stack}-orders.fifo")), "{topic}");
    for table in ["IdempotencyTable", "StockTable", "ShipmentsTable", "PointsTable"] {
        assert_eq!(created["tables"][table], format!("{stack}-{table}"));
    }
    let skipped: Vec<&str> = created["skipped"].as_array().unwrap().iter().map(|s| s["logicalId"].as_str().unwrap()).collect();
    for id in ["TopicKey", "EmailRole", "EmailFunction", "EmailLogGroup", "EmailDLQNewMessagesAlarm", "AlarmEmailSubscription"] {
        assert!(skipped.contains(&id), "{id} not in {skipped:?}");
    }
    assert!(created["ignored"]["OrdersTopic"][0].as_str().unwrap().contains("TopicKey"), "{created}");
    assert_eq!(created["functions"]["InventoryFunction"]["queueUrl"], created["queues"]["InventoryQueue"]);
    // The template's ScalingConfig.MaximumConcurrency (its MaxConcurrency parameter), for poll.
    for function in ["EmailFunction", "ShippingFunction", "InventoryFunction", "PointsFunction"] {
        assert_eq!(created["functions"][function]["maximumConcurrency"], 5, "{function}: {created}");
        let line = format!("# {function}: ScalingConfig.MaximumConcurrency 5: poll --concurrency 5");
        assert!(first.stderr.contains(&line), "{line} not in {}", first.stderr);
    }
    assert_eq!(created["functions"]["PointsFunction"]["environment"]["POINTS_TABLE"], format!("{stack}-PointsTable"));
    // Backoff and dead-letter forwarding are off unless a parameter turns them on.
    for function in ["EmailFunction", "ShippingFunction", "InventoryFunction", "PointsFunction"] {
        let environment = &created["functions"][function]["environment"];
        assert_eq!(environment["SQS_KIT_BACKOFF"], "off", "{function}: {environment}");
        assert_eq!(environment["SQS_KIT_DEAD_LETTER"], "off", "{function}: {environment}");
    }
    assert!(first.stderr.contains("export SQS_KIT_DEAD_LETTER=off"), "{}", first.stderr);
    assert_eq!(created["outputs"]["OrdersTopicArn"], topic.as_str());
    assert!(first.stderr.contains(&format!("export ORDERS_TOPIC_ARN={topic}")), "{}", first.stderr);
    assert!(first.stderr.contains(&format!("export IDEMPOTENCY_TABLE={stack}-IdempotencyTable")), "{}", first.stderr);
    assert_eq!(created["created"].as_array().unwrap().len(), 2 + 9 + 4 + 4, "{created}");

    // Queues: attributes from the template, redrive to the DLQ by ARN, with the overrides.
    let sqs = aws_sdk_sqs::Client::new(&config);
    let inventory = attributes(&sqs, &queue("queues", "InventoryQueue")).await;
    let inventory_dlq = attributes(&sqs, &queue("dlqs", "InventoryDLQ")).await;
    assert_eq!(inventory["FifoQueue"], "true");
    assert_eq!(inventory["VisibilityTimeout"], "4");
    assert_eq!(inventory["MessageRetentionPeriod"], "345600");
    assert_eq!(inventory["DeduplicationScope"], "messageGroup");
    let redrive: Value = serde_json::from_str(&inventory["RedrivePolicy"]).unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], inventory_dlq["QueueArn"].as_str());
    assert_eq!(redrive["maxReceiveCount"], 3);
    assert_eq!(inventory_dlq["MessageRetentionPeriod"], "1209600");
    let email = attributes(&sqs, &queue("queues", "EmailQueue")).await;
    assert!(!email.contains_key("FifoQueue") || email["FifoQueue"] == "false");
    let policy: Value = serde_json::from_str(&email["Policy"]).unwrap();
    assert_eq!(policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"], topic.as_str());

    // Without the overrides, the template's own values: FindInMap and the parameter default.
    let defaults_stack = e2e::unique_name("up-defaults");
    let defaults = up(&["--stack-name", &defaults_stack]).json();
    let email = attributes(&sqs, defaults["queues"]["EmailQueue"].as_str().unwrap()).await;
    assert_eq!(email["VisibilityTimeout"], "200");
    let redrive: Value = serde_json::from_str(&email["RedrivePolicy"]).unwrap();
    assert_eq!(redrive["maxReceiveCount"], 5);

    // Subscriptions: the four queues, raw delivery, the delivery DLQ.
    let sns = aws_sdk_sns::Client::new(&config);
    let subscriptions = sns.list_subscriptions_by_topic().topic_arn(&topic).send().await.unwrap().subscriptions.unwrap();
    assert_eq!(subscriptions.len(), 4);
    let delivery_dlq_arn = attributes(&sqs, &queue("dlqs", "DeliveryDLQ")).await["QueueArn"].clone();
    for subscription in &subscriptions {
        assert_eq!(subscription.protocol(), Some("sqs"));
        let arn = subscription.subscription_arn().unwrap();
        let attributes = sns.get_subscription_attributes().subscription_arn(arn).send().await.unwrap().attributes.unwrap();
        assert_eq!(attributes["RawMessageDelivery"], "true", "{attributes:?}");
        let redrive: Value = serde_json::from_str(&attributes["RedrivePolicy"]).unwrap();
        assert_eq!(redrive["deadLetterTargetArn"], delivery_dlq_arn.as_str());
    }
    let topic_attributes = sns.get_topic_attributes().topic_arn(&topic).send().await.unwrap().attributes.unwrap();
    assert_eq!(topic_attributes["FifoTopic"], "true");

    // Tables: key schema and TTL from the template.
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let points = dynamodb.describe_table().table_name(format!("{stack}-PointsTable")).send().await.unwrap().table.unwrap();
    let keys: Vec<(String, String)> =
        points.key_schema().iter().map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned())).collect();
    assert_eq!(keys, [("customerId".to_owned(), "HASH".to_owned()), ("sk".to_owned(), "RANGE".to_owned())]);
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(format!("{stack}-IdempotencyTable"))
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name(), Some("expiration"));
    assert_eq!(ttl.time_to_live_status().map(|s| s.as_str()), Some("ENABLED"));

    // Again: nothing created, the same URLs, no second subscription.
    let second = up(&["--stack-name", &stack, "--max-receive-count", "3", "--visibility-timeout", "4"]).json();
    assert_eq!(second["created"], serde_json::json!([]), "{second}");
    for kind in ["topics", "queues", "dlqs", "tables", "subscriptions"] {
        assert_eq!(second[kind], created[kind], "{kind}");
    }
    let subscriptions = sns.list_subscriptions_by_topic().topic_arn(&topic).send().await.unwrap().subscriptions.unwrap();
    assert_eq!(subscriptions.len(), 4);
    let queue_count = sqs.list_queues().queue_name_prefix(&stack).send().await.unwrap().queue_urls.unwrap_or_default().len();
    assert_eq!(queue_count, 9);

    // A third run with another visibility timeout brings the queues to it (and --stack, the
    // flag's first name, still names the stack).
    let third = up(&[
        "--stack",
        &stack,
        "--visibility-timeout",
        "9",
        "--parameter",
        "MaxConcurrency=8",
        "--parameter",
        "PointsDeadLetter=on",
        "--parameter",
        "EmailBackoff=base=2,cap=60,jitter=none",
    ])
    .json();
    assert_eq!(attributes(&sqs, &queue("queues", "InventoryQueue")).await["VisibilityTimeout"], "9");
    assert_eq!(third["functions"]["PointsFunction"]["maximumConcurrency"], 8, "{third}");
    // The switches reach only their own function's environment: the DLQ's local URL, the spec.
    let environment = |function: &str, name: &str| third["functions"][function]["environment"][name].clone();
    assert_eq!(environment("PointsFunction", "SQS_KIT_DEAD_LETTER"), created["dlqs"]["PointsDLQ"], "{third}");
    assert_eq!(environment("InventoryFunction", "SQS_KIT_DEAD_LETTER"), "off", "{third}");
    assert_eq!(environment("EmailFunction", "SQS_KIT_BACKOFF"), "base=2,cap=60,jitter=none", "{third}");
    assert_eq!(environment("PointsFunction", "SQS_KIT_BACKOFF"), "off", "{third}");
}

#[test]
fn local_up_refuses_to_run_without_a_local_endpoint() {
    // An empty variable counts as unset.
    let unset = [("AWS_ENDPOINT_URL", ""), ("AWS_ENDPOINT_URL_SQS", ""), ("AWS_ENDPOINT_URL_SNS", ""), ("AWS_ENDPOINT_URL_DYNAMODB", "")];
    let run = e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), ["local", "up"], &unset);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.contains("AWS_ENDPOINT_URL is not set"), "{run:?}");
}

#[test]
fn local_up_numbers_out_of_range_are_usage_errors_naming_the_range() {
    // A local endpoint nothing listens on: every refusal comes before the first request.
    let local = [("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("AWS_REGION", "us-east-1")];
    let refused = |args: &[&str], range: &str| {
        let run = e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), [&["local", "up"], args].concat(), &local);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
        assert!(run.stderr.contains(range), "{args:?}: {range} not in {run:?}");
    };
    // SQS's own limits: a visibility timeout of at most 12 hours, 1 to 1000 receives.
    refused(&["--visibility-timeout", "43201"], "a whole number from 0 to 43200");
    refused(&["--visibility-timeout=-1"], "a whole number from 0 to 43200");
    refused(&["--max-receive-count", "0"], "a whole number from 1 to 1000");
    refused(&["--max-receive-count", "1001"], "a whole number from 1 to 1000");
    // The template's parameter constraints, as CloudFormation checks them on deploy.
    refused(&["--parameter", "MaxReceiveCount=0"], "MaxReceiveCount=0: below the template's MinValue 5");
    refused(&["--parameter", "MaxReceiveCount=1001"], "MaxReceiveCount=1001: above the template's MaxValue 1000");
    refused(&["--parameter", "MaxReceiveCount=five"], "MaxReceiveCount=five: the template declares it a Number");
    refused(&["--parameter", "LogRetentionDays=2"], "LogRetentionDays=2: not one of the template's AllowedValues (1, 3, 5,");
    refused(&["--parameter", "EmailDeadLetter=yes"], "EmailDeadLetter=yes: not one of the template's AllowedValues (off, on)");
}

/// A template of one queue named after the stack, and a samconfig.toml beside it.
fn project(samconfig: Option<&str>) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let template = "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub \"${AWS::StackName}-q\"\n";
    std::fs::write(dir.path().join("template.yaml"), template).unwrap();
    if let Some(samconfig) = samconfig {
        std::fs::write(dir.path().join("samconfig.toml"), samconfig).unwrap();
    }
    let template = dir.path().join("template.yaml").display().to_string();
    (dir, template)
}

#[tokio::test]
async fn the_stack_name_is_the_flag_or_the_one_sam_deploy_would_use() {
    let Some(_config) = e2e::local_aws().await else { return };
    let from_samconfig = e2e::unique_name("samconfig");
    let (_dir, template) = project(Some(&format!("version = 0.1\n\n[default.global.parameters]\nstack_name = \"{from_samconfig}\"\n")));

    let created = up(&["--template", &template]).json();
    assert_eq!(created["stack"], from_samconfig.as_str());
    assert!(created["queues"]["Queue"].as_str().unwrap().ends_with(&format!("/{from_samconfig}-q")), "{created}");

    let from_flag = e2e::unique_name("flag");
    let created = up(&["--template", &template, "--stack-name", &from_flag]).json();
    assert!(created["queues"]["Queue"].as_str().unwrap().ends_with(&format!("/{from_flag}-q")), "{created}");
}

#[test]
fn without_a_stack_name_local_up_says_where_to_give_one() {
    let local = [("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("AWS_REGION", "us-east-1")];
    let refused = |samconfig: Option<&str>, expected: &str| {
        let (dir, template) = project(samconfig);
        let run = e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), ["local", "up", "--template", &template], &local);
        assert_eq!(run.code, Some(2), "{samconfig:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
        let samconfig_path = dir.path().join("samconfig.toml").display().to_string();
        let expected = expected.replace("SAMCONFIG", &samconfig_path);
        assert!(run.stderr.contains(&expected), "{samconfig:?}: {expected:?} not in {run:?}");
    };
    let ask = "no stack name: pass --stack-name NAME, or set stack_name under [default.global.parameters] in SAMCONFIG";
    refused(None, &format!("{ask} (there is no such file)"));
    refused(Some("version = 0.1\n[default.deploy.parameters]\nstack_name = \"deploy-only\"\n"), &format!("{ask} (it sets none)"));
    refused(Some("version = 0.1\n[default.global.parameters\n"), "SAMCONFIG is not valid TOML: line 2");
    refused(Some("[default.global.parameters]\nstack_name = 42\n"), "stack_name in SAMCONFIG is not a string");
    refused(Some("[default.global.parameters]\nstack_name = \"9lives\"\n"), "stack_name in SAMCONFIG 9lives: a stack name is a letter");
}

#[tokio::test]
async fn without_a_scaling_config_local_up_says_lambdas_default_applies() {
    let Some(_config) = e2e::local_aws().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let template = "Resources:
  Queue:
    Type: AWS::SQS::Queue
  Function:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Orders:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
            BatchSize: 10
";
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, template).unwrap();
    let run = up(&["--template", path.to_str().unwrap(), "--stack-name", &e2e::unique_name("unscaled")]);
    let function = &run.json()["functions"]["Function"];
    assert_eq!(function["batchSize"], 10, "{function}");
    assert_eq!(function["maximumConcurrency"], Value::Null, "{function}");
    assert!(run.stderr.contains("# Function: no ScalingConfig.MaximumConcurrency: Lambda's default applies"), "{}", run.stderr);
}
