//! `sqs-kit local alarms` against the local AWS API (moto): the alarms of a template, in the
//! shapes template.yaml uses, evaluated on what `local up` created and on the functions' metric
//! lines. Skipped without AWS_ENDPOINT_URL (see `e2e::local_aws`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use e2e::Run;
use serde_json::{json, Value};

/// One function, its queue and DLQ, and one alarm of each shape the evaluator reads (and two it
/// cannot observe or parse).
const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  DLQAgeAlarmSeconds: {Type: Number, Default: 600}
Resources:
  EmailDLQ:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-email-dlq"
  EmailQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-email"
      RedrivePolicy: {deadLetterTargetArn: !GetAtt EmailDLQ.Arn, maxReceiveCount: 5}
  EmailFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: {Binary: email}
    Properties:
      FunctionName: !Sub "${AWS::StackName}-email"
      CodeUri: functions/email
  EmailDLQNewMessagesAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${AWS::StackName}-email-dlq-new-messages"
      Metrics:
        - Id: depth
          MetricStat:
            Metric:
              Namespace: AWS/SQS
              MetricName: ApproximateNumberOfMessagesVisible
              Dimensions: [{Name: QueueName, Value: !GetAtt EmailDLQ.QueueName}]
            Period: 60
            Stat: Maximum
          ReturnData: false
        - Id: new_messages
          Expression: "DIFF(FILL(depth, 0))"
          ReturnData: true
      EvaluationPeriods: 2
      DatapointsToAlarm: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
  EmailDLQAgeAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${AWS::StackName}-email-dlq-age"
      Namespace: AWS/SQS
      MetricName: ApproximateAgeOfOldestMessage
      Dimensions: [{Name: QueueName, Value: !GetAtt EmailDLQ.QueueName}]
      Statistic: Maximum
      Period: 300
      EvaluationPeriods: 1
      Threshold: !Ref DLQAgeAlarmSeconds
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
  EmailQueueAgeAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${AWS::StackName}-email-queue-age"
      Namespace: AWS/SQS
      MetricName: ApproximateAgeOfOldestMessage
      Dimensions: [{Name: QueueName, Value: !GetAtt EmailQueue.QueueName}]
      Statistic: Maximum
      Period: 60
      EvaluationPeriods: 5
      Threshold: 300
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
  EmailPermanentFailuresAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${AWS::StackName}-email-permanent-failures"
      Metrics:
        - Id: permanent
          MetricStat:
            Metric:
              Namespace: SqsKit
              MetricName: RecordsFailedPermanent
              Dimensions: [{Name: FunctionName, Value: !Ref EmailFunction}]
            Period: 60
            Stat: Sum
          ReturnData: false
        - Id: dead_lettered
          MetricStat:
            Metric:
              Namespace: SqsKit
              MetricName: RecordsDeadLettered
              Dimensions: [{Name: FunctionName, Value: !Ref EmailFunction}]
            Period: 60
            Stat: Sum
          ReturnData: false
        - Id: failures
          Expression: "FILL(permanent, 0) + FILL(dead_lettered, 0)"
          ReturnData: true
      EvaluationPeriods: 1
      DatapointsToAlarm: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
  EmailDurationAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${AWS::StackName}-email-duration"
      Namespace: AWS/Lambda
      MetricName: Duration
      Dimensions: [{Name: FunctionName, Value: !Ref EmailFunction}]
      ExtendedStatistic: p99
      Period: 60
      EvaluationPeriods: 3
      Threshold: 8000
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
  EmailDLQTrendAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${AWS::StackName}-email-dlq-trend"
      Metrics:
        - Id: depth
          MetricStat:
            Metric:
              Namespace: AWS/SQS
              MetricName: ApproximateNumberOfMessagesVisible
              Dimensions: [{Name: QueueName, Value: !GetAtt EmailDLQ.QueueName}]
            Period: 60
            Stat: Maximum
          ReturnData: false
        - Id: trend
          Expression: "SLOPE(depth)"
          ReturnData: true
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
"#;

struct Stack {
    dir: tempfile::TempDir,
    name: String,
    template: String,
    state: String,
}

impl Stack {
    /// The template in a directory of its own, and `local up` for a fresh stack name.
    fn up() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("template.yaml");
        std::fs::write(&template, TEMPLATE).unwrap();
        let template = template.display().to_string();
        let name = e2e::unique_name("alarms");
        let up = sqs_kit(&["local", "up", "--template", &template, "--stack-name", &name]);
        assert_eq!(up.code, Some(0), "{up:?}");
        let state = dir.path().join("state.json").display().to_string();
        Stack { dir, name, template, state }
    }

    fn alarms(&self, metrics: &Path) -> (Run, Vec<Value>) {
        let metrics = metrics.display().to_string();
        let args =
            ["local", "alarms", "--template", &self.template, "--stack-name", &self.name, "--metrics", &metrics, "--state", &self.state];
        let run = sqs_kit(&args);
        let lines = run.stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"))).collect();
        (run, lines)
    }

    /// A log file of EMF lines (and other lines around them) in `logs/`.
    fn log(&self, file: &str, documents: &[Value]) -> std::path::PathBuf {
        let logs = self.dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let mut text = String::from("2025-01-01T00:00:00Z INFO poll started\n{\"level\":\"INFO\",\"message\":\"a JSON log line\"}\n");
        for document in documents {
            text.push_str(&document.to_string());
            text.push('\n');
        }
        std::fs::write(logs.join(file), text).unwrap();
        logs
    }
}

fn sqs_kit(args: &[&str]) -> Run {
    e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), args, &[])
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One batch's metric line, as sqs-kit writes it.
fn batch(function: &str, ago_ms: i64, processed: u64, permanent: u64) -> Value {
    json!({
        "_aws": {
            "Timestamp": now_ms() - ago_ms,
            "CloudWatchMetrics": [{
                "Namespace": "SqsKit",
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "RecordsProcessed", "Unit": "Count"},
                    {"Name": "RecordsFailedPermanent", "Unit": "Count"},
                    {"Name": "RecordsDeadLettered", "Unit": "Count"},
                ],
            }],
        },
        "FunctionName": function,
        "RecordsProcessed": processed,
        "RecordsFailedPermanent": permanent,
        "RecordsDeadLettered": 0,
    })
}

fn by_name<'a>(lines: &'a [Value], stack: &str, what: &str) -> &'a Value {
    let name = format!("{stack}-{what}");
    lines.iter().find(|line| line["name"] == name.as_str()).unwrap_or_else(|| panic!("no alarm {name} in {lines:?}"))
}

#[tokio::test]
async fn the_dlq_and_failed_record_alarms_follow_what_happens() {
    let Some(config) = e2e::local_aws().await else { return };
    let stack = Stack::up();
    let state = |lines: &[Value], what: &str| by_name(lines, &stack.name, what)["state"].as_str().unwrap().to_owned();

    // A clean run: every observable alarm OK, the others INSUFFICIENT_DATA with the reason.
    // A failure an hour ago, or of another function, is not this minute's.
    let clean = stack.log("email.log", &[batch("email", 0, 3, 0), batch("email", 3_600_000, 0, 2), batch("shipping", 0, 0, 4)]);
    let (run, lines) = stack.alarms(&clean);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(lines.len(), 6, "{lines:?}");
    for what in ["email-dlq-new-messages", "email-dlq-age", "email-queue-age", "email-permanent-failures"] {
        assert_eq!(state(&lines, what), "OK", "{what}: {lines:?}");
    }
    let failures = by_name(&lines, &stack.name, "email-permanent-failures");
    assert_eq!(failures["value"], 0.0, "{failures}");
    assert_eq!(failures["threshold"], 0.0);
    assert_eq!(failures["comparison"], "GreaterThanThreshold");
    assert_eq!(by_name(&lines, &stack.name, "email-dlq-age")["threshold"], 600.0, "the parameter's default");
    let duration = by_name(&lines, &stack.name, "email-duration");
    assert_eq!(duration["state"], "INSUFFICIENT_DATA");
    assert!(duration["reason"].as_str().unwrap().contains("AWS/Lambda Duration is not observable locally"), "{duration}");
    let trend = by_name(&lines, &stack.name, "email-dlq-trend");
    assert_eq!(trend["state"], "INSUFFICIENT_DATA");
    assert!(trend["reason"].as_str().unwrap().contains("the expression \"SLOPE(depth)\""), "{trend}");

    // A dead letter: the new-messages alarm fires; its age is far below the threshold.
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq = sqs.get_queue_url().queue_name(format!("{}-email-dlq", stack.name)).send().await.unwrap().queue_url.unwrap();
    sqs.send_message().queue_url(&dlq).message_body("{\"orderId\":\"ORD-1\"}").send().await.unwrap();
    let (run, lines) = stack.alarms(&clean);
    assert_eq!(run.code, Some(1), "{run:?}");
    let new_messages = by_name(&lines, &stack.name, "email-dlq-new-messages");
    assert_eq!(new_messages["state"], "ALARM", "{new_messages}");
    assert_eq!(new_messages["value"], 1.0, "{new_messages}");
    let age = by_name(&lines, &stack.name, "email-dlq-age");
    assert_eq!(age["state"], "OK", "{age}");
    assert!(age["value"].as_f64().unwrap() < 60.0, "{age}");
    // Reading the age left the message where it was, visible.
    assert_eq!(depth(&sqs, &dlq).await, (1, 0), "visible, in flight");

    // Permanent failures of the function, under its local (binary) or deployed name.
    for name in ["email".to_owned(), format!("{}-email", stack.name)] {
        let failing = stack.log("email.log", &[batch(&name, 1_000, 2, 1)]);
        let (run, lines) = stack.alarms(&failing);
        assert_eq!(run.code, Some(1), "{run:?}");
        let failures = by_name(&lines, &stack.name, "email-permanent-failures");
        assert_eq!(failures["state"], "ALARM", "{name}: {failures}");
        assert_eq!(failures["value"], 1.0, "{failures}");
    }

    // The same dead letter minutes later (the state file remembers the depth since): an old
    // one alone does not fire again.
    let series = format!("AWS/SQS ApproximateNumberOfMessagesVisible QueueName={}-email-dlq", stack.name);
    let earlier = json!({"samples": {series: [[now_ms() - 600_000, 0.0], [now_ms() - 300_000, 1.0]]}, "states": {}});
    std::fs::write(&stack.state, earlier.to_string()).unwrap();
    let clean = stack.log("email.log", &[batch("email", 0, 1, 0)]);
    let (run, lines) = stack.alarms(&clean);
    assert_eq!(state(&lines, "email-dlq-new-messages"), "OK", "{lines:?}");
    assert_eq!(run.code, Some(0), "{run:?}");
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let output = sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::All).send().await.unwrap();
    let attributes = output.attributes.unwrap();
    let count = |name: QueueAttributeName| attributes[&name].parse::<u64>().unwrap();
    (count(QueueAttributeName::ApproximateNumberOfMessages), count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

#[tokio::test]
async fn watch_prints_a_table_per_refresh() {
    if e2e::local_aws().await.is_none() {
        return;
    }
    let stack = Stack::up();
    let metrics = stack.log("email.log", &[batch("email", 0, 1, 1)]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sqs-kit"))
        .args(["local", "alarms", "--template", &stack.template, "--stack-name", &stack.name, "--state", &stack.state, "--watch", "1"])
        .arg("--metrics")
        .arg(&metrics)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("== ") {
            if blocks.len() == 2 {
                break;
            }
            blocks.push(Vec::new());
        }
        blocks.last_mut().expect("a block starts with its header").push(line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    for (n, block) in blocks.iter().enumerate() {
        assert!(block[0].contains(&format!("stack {} (refresh {})", stack.name, n + 1)), "{block:?}");
        assert!(block[0].contains("1 ALARM, 3 OK, 2 INSUFFICIENT_DATA"), "{block:?}");
        assert!(block[1].starts_with("STATE"), "{block:?}");
        assert_eq!(block.len(), 2 + 6, "{block:?}");
        let failures = block.iter().find(|row| row.contains(&format!("{}-email-permanent-failures", stack.name))).unwrap();
        assert!(failures.starts_with("ALARM "), "{failures}");
    }
}

#[test]
fn bad_input_is_one_error_line_and_exit_2() {
    // A local endpoint nothing listens on: every refusal comes before the first request.
    let local = [("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("AWS_REGION", "us-east-1")];
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let template = template.display().to_string();
    let refused = |args: &[&str], envs: &[(&str, &str)], says: &str| {
        let run = e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), [&["local", "alarms"], args].concat(), envs);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
        assert!(run.stderr.starts_with("error: "), "{run:?}");
        assert!(run.stderr.contains(says), "{args:?}: {says} not in {run:?}");
    };
    refused(&["--template", "/nonexistent/template.yaml", "--stack-name", "s"], &local, "cannot read /nonexistent/template.yaml");
    refused(&["--template", &template, "--stack-name", "s", "--watch", "0"], &local, "a whole number from 1 to 3600");
    refused(&["--template", &template, "--stack-name", "s", "--bogus"], &local, "--bogus");
    refused(&["--template", &template], &local, "no stack name: pass --stack-name NAME");
    refused(&["--template", &template, "--stack-name", "s", "--metrics", "/nonexistent/logs"], &local, "--metrics /nonexistent/logs");
    refused(&["--template", &template, "--stack-name", "s", "--parameter", "Nope=1"], &local, "the template declares no parameter Nope");
    // An empty variable counts as unset.
    let unset = [("AWS_ENDPOINT_URL", ""), ("AWS_ENDPOINT_URL_SQS", ""), ("AWS_ENDPOINT_URL_SNS", ""), ("AWS_ENDPOINT_URL_DYNAMODB", "")];
    let state = dir.path().join("state.json");
    std::fs::write(&state, "not json").unwrap();
    let state = state.display().to_string();
    refused(&["--template", &template, "--stack-name", "s", "--state", &state], &local, "is not a state file of local alarms");
    refused(&["--template", &template, "--stack-name", "s"], &unset, "AWS_ENDPOINT_URL is not set");
}

#[tokio::test]
async fn a_stack_that_was_not_brought_up_is_named() {
    if e2e::local_aws().await.is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.yaml");
    std::fs::write(&template, TEMPLATE).unwrap();
    let stack = e2e::unique_name("never-up");
    let run = sqs_kit(&["local", "alarms", "--template", &template.display().to_string(), "--stack-name", &stack]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains(&format!("run `sqs-kit local up --stack-name {stack}` first")), "{run:?}");
}
