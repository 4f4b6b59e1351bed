//! Whole-process figures of the function binaries: `replay` wall time and peak memory, Lambda
//! init time (process start to the first request for an event), and a `poll` run over 1,000
//! messages. Printed as a markdown table; never asserted. Run by `scripts/bench`, which builds the
//! release binaries and starts the local AWS API this needs.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::workspace_root;

/// The release binaries, next to this bench's own executable (target/release/deps/..).
fn binary(name: &str) -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join(name)
}

/// A finished child: its wall time from spawn to exit, peak resident memory and stderr.
struct Measured {
    elapsed: Duration,
    max_rss_kib: i64,
    success: bool,
    stderr: String,
}

/// Runs `command` to its end and reads its own resource usage with `wait4`, which (unlike
/// `getrusage(RUSAGE_CHILDREN)`) gives this child's peak memory alone.
// The child is reaped by wait4, not by Child::wait.
#[allow(clippy::zombie_processes)]
fn measured(mut command: Command) -> Measured {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    command.stdout(Stdio::null()).stderr(Stdio::from(stderr.reopen().unwrap()));
    let started = Instant::now();
    let child = command.spawn().expect("the binary starts");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our child's, not yet reaped; status and usage are ours to write.
    let reaped = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(reaped, child.id() as libc::pid_t, "wait4 failed");
    Measured {
        elapsed: started.elapsed(),
        max_rss_kib: usage.ru_maxrss,
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stderr: std::fs::read_to_string(stderr.path()).unwrap_or_default(),
    }
}

/// A 10-record inventory event: the clean batch's orders under new ids, spread over groups.
fn ten_record_event(dir: &Path) -> PathBuf {
    let template: serde_json::Value = serde_json::from_str(&e2e::read_event("events/inventory/clean-batch.json")).unwrap();
    let base = template["Records"].as_array().unwrap();
    let records: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            let mut record = base[i % base.len()].clone();
            let mut body: serde_json::Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            body["eventId"] = format!("bench-event-{i}").into();
            body["orderId"] = format!("BENCH-{i}").into();
            record["body"] = body.to_string().into();
            record["messageId"] = format!("bench-message-{i}").into();
            record["attributes"]["MessageGroupId"] = format!("CUST-{}", i % 4).into();
            record
        })
        .collect();
    let path = dir.join("ten-records.json");
    std::fs::write(&path, serde_json::json!({ "Records": records }).to_string()).unwrap();
    path
}

/// `inventory replay` of 10 records on a fresh embedded store: median wall time of `runs`
/// process runs, start to exit, and the peak RSS.
fn replay_figures(runs: usize) -> (Duration, i64) {
    let dir = tempfile::tempdir().unwrap();
    let event = ten_record_event(dir.path());
    let mut times = Vec::new();
    let mut max_rss = 0;
    for run in 0..runs {
        let state = dir.path().join(format!("state-{run}"));
        let seeded = Command::new(binary("inventory"))
            .args(["seed", "events/inventory/stock.json", "--state"])
            .arg(&state)
            .current_dir(workspace_root())
            .output()
            .unwrap();
        assert!(seeded.status.success());
        let mut replay = Command::new(binary("inventory"));
        replay.arg("replay").arg(&event).arg("--state").arg(&state).env("LOG_LEVEL", "warn").current_dir(workspace_root());
        let run = measured(replay);
        assert!(run.success, "{}", run.stderr);
        times.push(run.elapsed);
        max_rss = max_rss.max(run.max_rss_kib);
    }
    times.sort();
    (times[times.len() / 2], max_rss)
}

/// Process start to the function's first `GET /runtime/invocation/next`: Lambda's init phase.
fn init_time(function: &str, envs: &[(&str, String)]) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut command = Command::new(binary(function));
    command
        .env("AWS_LAMBDA_RUNTIME_API", &address)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in envs {
        command.env(name, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let (stream, _) = listener.accept().unwrap();
    let mut line = String::new();
    BufReader::new(stream.try_clone().unwrap()).read_line(&mut line).unwrap();
    let elapsed = started.elapsed();
    assert!(line.contains("/runtime/invocation/next"), "unexpected first request {line}");
    let _ = child.kill();
    let _ = child.wait();
    drop(stream);
    elapsed
}

/// `points poll` over `count` messages on the local AWS API: messages per second and peak RSS.
async fn poll_figures(config: &aws_config::SdkConfig, count: usize) -> (f64, i64) {
    let client = aws_sdk_sqs_client(config);
    let queue = client.create_queue().queue_name(e2e::unique_name("bench")).send().await.unwrap().queue_url.unwrap();
    let orders: serde_json::Value = serde_json::from_str(&e2e::read_event("events/points/clean-batch.json")).unwrap();
    let body: serde_json::Value = serde_json::from_str(orders["Records"][0]["body"].as_str().unwrap()).unwrap();
    for chunk in (0..count).collect::<Vec<_>>().chunks(10) {
        let mut batch = client.send_message_batch().queue_url(&queue);
        for i in chunk {
            let mut body = body.clone();
            body["eventId"] = format!("poll-bench-{i}").into();
            body["orderId"] = format!("POLL-{i}").into();
            batch = batch.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body.to_string())
                    .build()
                    .unwrap(),
            );
        }
        batch.send().await.unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let mut poll = Command::new(binary("points"));
    poll.args(["poll", "--queue-url", &queue, "--idle-exit", "2", "--state"])
        .arg(state.path())
        .env("LOG_LEVEL", "warn")
        .env("SQS_KIT_METRICS", "off");
    let run = measured(poll);
    assert!(run.success, "{}", run.stderr);
    let working = run.elapsed.saturating_sub(Duration::from_secs(2));
    (count as f64 / working.as_secs_f64(), run.max_rss_kib)
}

fn aws_sdk_sqs_client(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

#[tokio::main]
async fn main() {
    let mut table = String::from("| benchmark | figure |\n|---|---|\n");
    let (replay_time, replay_rss) = replay_figures(21);
    table += &format!(
        "| `inventory replay` of 10 records, process start to exit, embedded store (median of 21) | {:.1} ms |\n",
        replay_time.as_secs_f64() * 1e3
    );
    table += &format!("| peak RSS of that replay | {:.1} MiB |\n", replay_rss as f64 / 1024.0);

    match e2e::local_aws().await {
        Some(config) => {
            let envs = [
                ("IDEMPOTENCY_TABLE", "bench-idempotency".to_owned()),
                ("STOCK_TABLE", "bench-stock".into()),
                ("SHIPMENTS_TABLE", "bench-shipments".into()),
                ("POINTS_TABLE", "bench-points".into()),
                ("EMAIL_SENDER", "orders@example.com".into()),
            ];
            for function in ["email", "shipping", "inventory", "points"] {
                let mut runs: Vec<Duration> = (0..11).map(|_| init_time(function, &envs)).collect();
                runs.sort();
                table += &format!(
                    "| `{function}` init, process start to ready for the first event (median of 11) | {:.1} ms |\n",
                    runs[5].as_secs_f64() * 1e3
                );
            }
            let (rate, rss) = poll_figures(&config, 1000).await;
            table += &format!("| `points poll` over 1,000 messages (moto), embedded store | {rate:.0} messages/s |\n");
            table += &format!("| peak RSS of that poll | {:.1} MiB |\n", rss as f64 / 1024.0);
        }
        None => table += "| init time, poll | not run: AWS_ENDPOINT_URL is not set (scripts/bench starts moto) |\n",
    }
    print!("{table}");
    let _ = std::io::stdout().flush();
}
