//! Whole-process figures of the function binaries: `replay` wall time and peak memory, Lambda
//! init time (process start to the first request for an event), `poll` runs over 1,000
//! messages at concurrency 1, 4 and 8, and what the local AWS API alone sustains for the same
//! receives and deletes (the ceiling of those figures). Printed as a markdown table; never
//! asserted. Run by `scripts/bench`, which builds the release binaries and starts the local AWS
//! API this needs.

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

/// A child started by [`start`], its stderr going to a file until [`Running::finish`] reaps it.
struct Running {
    child: std::process::Child,
    started: Instant,
    stderr: tempfile::NamedTempFile,
}

fn start(mut command: Command) -> Running {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    command.stdout(Stdio::null()).stderr(Stdio::from(stderr.reopen().unwrap()));
    let started = Instant::now();
    let child = command.spawn().expect("the binary starts");
    Running { child, started, stderr }
}

impl Running {
    /// Waits for the child to end and reads its own resource usage with `wait4`, which (unlike
    /// `getrusage(RUSAGE_CHILDREN)`) gives this child's peak memory alone.
    // The child is reaped by wait4, not by Child::wait.
    #[allow(clippy::zombie_processes)]
    fn finish(self) -> Measured {
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: the pid is our child's, not yet reaped; status and usage are ours to write.
        let reaped = unsafe { libc::wait4(self.child.id() as libc::pid_t, &mut status, 0, &mut usage) };
        assert_eq!(reaped, self.child.id() as libc::pid_t, "wait4 failed");
        Measured {
            elapsed: self.started.elapsed(),
            max_rss_kib: usage.ru_maxrss,
            success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            stderr: std::fs::read_to_string(self.stderr.path()).unwrap_or_default(),
        }
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
        let run = start(replay).finish();
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

/// The `poll --concurrency` values measured, and the messages each run drains.
const POLL_CONCURRENCY: [usize; 3] = [1, 4, 8];
const POLL_MESSAGES: usize = 1000;

/// A new standard queue holding `count` points orders.
async fn filled_queue(client: &aws_sdk_sqs::Client, count: usize) -> String {
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
    queue
}

/// `points poll --concurrency N` over `count` messages on the local AWS API: messages per
/// second from process start until the poller has deleted `count`, and peak RSS. The clock
/// stops at the last delete, read from the poller's own "batch done" lines, not at the exit,
/// which waits out `--idle-exit`; nor at an empty queue, which moto may never show: of two
/// deletes at once it can lose one (it rebuilds the queue's list without a lock).
async fn poll_figures(client: &aws_sdk_sqs::Client, count: usize, concurrency: usize) -> (f64, i64) {
    let queue = filled_queue(client, count).await;
    let state = tempfile::tempdir().unwrap();
    let mut poll = Command::new(binary("points"));
    poll.args(["poll", "--queue-url", &queue, "--idle-exit", "2", "--concurrency", &concurrency.to_string(), "--state"])
        .arg(state.path())
        .env("LOG_LEVEL", "warn,sqs_kit::runner::poll=info")
        .env("SQS_KIT_METRICS", "off");
    let running = start(poll);
    let deleted = |log: &str| -> usize {
        let done = log.lines().filter(|line| line.contains("batch done"));
        done.filter_map(|line| line.split(" deleted=").nth(1)?.split(' ').next()?.parse::<usize>().ok()).sum()
    };
    while deleted(&std::fs::read_to_string(running.stderr.path()).unwrap_or_default()) < count {
        assert!(running.started.elapsed() < Duration::from_secs(300), "the poll never deleted {count} messages");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let working = running.started.elapsed();
    let run = running.finish();
    assert!(run.success, "{}", run.stderr);
    (count as f64 / working.as_secs_f64(), run.max_rss_kib)
}

/// What the local AWS API alone sustains for the calls `poll` makes: `loops` receive (10 at a
/// time, every attribute, as `poll` asks) + `DeleteMessageBatch` loops at once over `count`
/// messages, nothing processed in between; messages per second.
async fn receive_delete_figure(client: &aws_sdk_sqs::Client, count: usize, loops: usize) -> f64 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
    let queue = filled_queue(client, count).await;
    let deleted = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..loops {
        let (client, queue, deleted) = (client.clone(), queue.clone(), Arc::clone(&deleted));
        workers.spawn(async move {
            while deleted.load(Ordering::SeqCst) < count {
                let received = client
                    .receive_message()
                    .queue_url(&queue)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .message_attribute_names("All")
                    .send()
                    .await
                    .unwrap()
                    .messages
                    .unwrap_or_default();
                if received.is_empty() {
                    continue;
                }
                let entries = received.iter().enumerate().map(|(i, message)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(message.receipt_handle().unwrap())
                        .build()
                        .unwrap()
                });
                let output = client.delete_message_batch().queue_url(&queue).set_entries(Some(entries.collect())).send().await.unwrap();
                deleted.fetch_add(output.successful().len(), Ordering::SeqCst);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    count as f64 / started.elapsed().as_secs_f64()
}

fn joined(values: &[usize]) -> String {
    values.iter().map(usize::to_string).collect::<Vec<_>>().join(" / ")
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
            let client = aws_sdk_sqs::Client::new(&config);
            let mut rss = Vec::new();
            for concurrency in POLL_CONCURRENCY {
                let (rate, peak) = poll_figures(&client, POLL_MESSAGES, concurrency).await;
                table += &format!(
                    "| `points poll --concurrency {concurrency}` over 1,000 messages (moto), embedded store | {rate:.0} messages/s |\n"
                );
                rss.push(format!("{:.1}", peak as f64 / 1024.0));
            }
            table += &format!("| peak RSS of those polls (concurrency {}) | {} MiB |\n", joined(&POLL_CONCURRENCY), rss.join(" / "));
            let mut limits = Vec::new();
            for loops in POLL_CONCURRENCY {
                limits.push(format!("{:.0}", receive_delete_figure(&client, POLL_MESSAGES, loops).await));
            }
            table += &format!(
                "| moto's own limit: receive + delete of 1,000 messages, nothing processed, {} loops at once | {} messages/s |\n",
                joined(&POLL_CONCURRENCY),
                limits.join(" / ")
            );
        }
        None => table += "| init time, poll | not run: AWS_ENDPOINT_URL is not set (scripts/bench starts moto) |\n",
    }
    print!("{table}");
    let _ = std::io::stdout().flush();
}
