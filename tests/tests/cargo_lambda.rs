//! `cargo lambda watch` + `cargo lambda invoke` (Lambda mode behind cargo-lambda's Runtime API
//! emulator) answers exactly what `replay` prints, for every function, on DynamoDB (moto).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{create_table, idempotency_table, local_aws, unique_name, workspace_root, Run};

const FUNCTIONS: [&str; 4] = ["email", "shipping", "inventory", "points"];
const EVENT: &str = "duplicate-and-malformed.json";
const SENDER: &str = "orders@example.com";

/// The tables of one run of the four functions, as environment variables.
async fn tables(config: &aws_config::SdkConfig) -> Vec<(String, String)> {
    let stock = unique_name("stock");
    let shipments = unique_name("shipments");
    let points = unique_name("points");
    create_table(config, &stock, "pk", None).await;
    create_table(config, &shipments, "orderId", None).await;
    create_table(config, &points, "customerId", Some("sk")).await;
    vec![
        ("IDEMPOTENCY_TABLE".into(), idempotency_table(config).await),
        ("STOCK_TABLE".into(), stock),
        ("SHIPMENTS_TABLE".into(), shipments),
        ("POINTS_TABLE".into(), points),
        ("EMAIL_SENDER".into(), SENDER.into()),
    ]
}

fn run_function(function: &str, args: &[&str], envs: &[(String, String)]) -> Run {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    e2e::run(&e2e::binary(function), args, &envs)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// cargo-lambda from the project's .venv (where scripts/test installs it), or from PATH.
fn cargo_lambda() -> std::path::PathBuf {
    let local = workspace_root().join(".venv/bin/cargo-lambda");
    if local.exists() {
        local
    } else {
        "cargo-lambda".into()
    }
}

fn cargo_lambda_available() -> bool {
    let available = Command::new(cargo_lambda()).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    assert!(
        available || std::env::var_os("SQS_KIT_TEST_REQUIRE_AWS").is_none(),
        "cargo-lambda is not on PATH: scripts/test installs it into .venv"
    );
    available
}

#[tokio::test]
async fn cargo_lambda_invoke_answers_what_replay_prints() {
    let Some(config) = local_aws().await else { return };
    if !cargo_lambda_available() {
        eprintln!("skipping: cargo-lambda is not on PATH");
        return;
    }
    e2e::verify_ses_identity(&config, SENDER).await;

    let (replayed, invoked) = (tables(&config).await, tables(&config).await);
    for envs in [&replayed, &invoked] {
        let seeded = run_function("inventory", &["seed", "events/inventory/stock.json", "--store", "dynamodb"], envs);
        assert_eq!(seeded.code, Some(0), "{seeded:?}");
    }

    let port = free_port();
    let mut watch = Command::new(cargo_lambda());
    watch
        .args(["lambda", "watch", "--ignore-changes", "--quiet", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
        .current_dir(workspace_root())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in &invoked {
        watch.env(name, value);
    }
    let _watch = Watch(watch.spawn().expect("cargo lambda watch starts"));

    for function in FUNCTIONS {
        let event = format!("events/{function}/{EVENT}");
        let replay = run_function(function, &["replay", &event, "--store", "dynamodb"], &replayed);
        assert_eq!(replay.code, Some(0), "{function}: {replay:?}");
        let expected: serde_json::Value = replay.json();

        // The first invoke of a function compiles and starts it: retry until the emulator answers.
        let started = Instant::now();
        let invoked = loop {
            let output: Run = Command::new(cargo_lambda())
                .args([
                    "lambda",
                    "invoke",
                    function,
                    "--data-file",
                    &event,
                    "--invoke-address",
                    "127.0.0.1",
                    "--invoke-port",
                    &port.to_string(),
                    "--output-format",
                    "json",
                ])
                .current_dir(workspace_root())
                .output()
                .unwrap()
                .into();
            if output.code == Some(0) {
                break output;
            }
            assert!(started.elapsed() < Duration::from_secs(600), "{function}: cargo lambda invoke kept failing: {output:?}");
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        assert_eq!(invoked.json(), expected, "{function}: Lambda mode and replay disagree");
        assert_eq!(expected["batchItemFailures"].as_array().unwrap().len(), 1, "{function}: the malformed record fails");
    }
}
