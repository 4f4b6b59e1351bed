//! The local run modes as a shell user meets them: which name prefixes the functions' keys, and
//! what happens to a command whose standard output cannot be written.

use std::path::Path;
use std::process::{Command, Stdio};

use e2e::{binary, run, Run};

const ORDERS: &str = "events/shipping/clean-batch.json";

fn totals(run: &Run) -> &str {
    run.stderr.lines().find(|line| line.starts_with("totals: ")).unwrap_or_else(|| panic!("no totals in {run:?}"))
}

#[test]
fn an_inherited_lambda_function_name_does_not_merge_functions_keys() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    // Left over in a shell from working on the deployed e-mail function.
    let inherited = [("AWS_LAMBDA_FUNCTION_NAME", "email")];

    let shipping = run(&binary("shipping"), ["replay", ORDERS, "--state", state], &inherited);
    assert_eq!(shipping.code, Some(0), "{shipping:?}");
    assert!(totals(&shipping).starts_with("totals: 3 processed, 0 duplicate"), "{shipping:?}");
    assert!(
        shipping.stderr.contains("AWS_LAMBDA_FUNCTION_NAME=email is ignored outside Lambda: keys are prefixed with shipping#"),
        "{}",
        shipping.stderr
    );

    let points = run(&binary("points"), ["replay", ORDERS, "--state", state], &inherited);
    assert_eq!(points.code, Some(0), "{points:?}");
    assert!(totals(&points).starts_with("totals: 3 processed, 0 duplicate"), "points must not skip shipping's keys: {points:?}");

    // The flag does pick the prefix: under shipping's name, points finds shipping's records.
    let shared = run(&binary("points"), ["replay", ORDERS, "--state", state, "--function-name", "shipping"], &inherited);
    assert!(totals(&shared).starts_with("totals: 0 processed, 3 duplicate"), "{shared:?}");
}

/// Runs `binary args...` with stdout going to `stdout`.
fn run_into(binary: &Path, args: &[&str], stdout: Stdio) -> Run {
    Command::new(binary)
        .args(args)
        .current_dir(e2e::workspace_root())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
        .into()
}

/// A full disk: every write to /dev/full fails with ENOSPC.
fn full_disk() -> Stdio {
    std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full exists on Linux").into()
}

/// A pipe whose reader is gone, as after `| head -c0`: writes fail with EPIPE (Rust programs
/// ignore SIGPIPE). The reader is the stdin of a process that has exited, so no write can
/// slip into the pipe before it closes.
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().expect("true runs");
    let writer = reader.stdin.take().expect("a piped stdin");
    reader.wait().unwrap();
    writer.into()
}

/// Exit 1 and one `error:` line that names standard output, not a panic.
fn assert_output_error(what: &str, run: &Run, cause: &str) {
    assert_eq!(run.code, Some(1), "{what}: {run:?}");
    assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
    let errors: Vec<&str> = run.stderr.lines().filter(|line| line.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{what}: {}", run.stderr);
    assert!(errors[0].contains("cannot write to standard output") && errors[0].contains(cause), "{what}: {}", errors[0]);
}

#[test]
fn a_state_command_whose_stdout_is_full_or_closed_fails_with_one_line() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let seeded = run(&binary("inventory"), ["seed", "events/inventory/stock.json", "--state", state], &[]);
    assert_eq!(seeded.code, Some(0), "{seeded:?}");
    for (name, args) in [
        ("inventory", vec!["stock", "--state", state]),
        ("inventory", vec!["seed", "events/inventory/stock.json", "--state", state]),
        ("points", vec!["balance", "CUST-42", "--state", state]),
        ("email", vec!["outbox", "--state", state]),
    ] {
        let what = format!("{name} {args:?}");
        assert_output_error(&what, &run_into(&binary(name), &args, full_disk()), "No space left on device");
        assert_output_error(&what, &run_into(&binary(name), &args, closed_pipe()), "Broken pipe");
    }
}

#[test]
fn a_replay_whose_stdout_fails_still_commits_and_says_so_in_one_line() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let replay = run_into(&binary("points"), &["replay", ORDERS, "--state", state], full_disk());
    assert_output_error("replay > /dev/full", &replay, "No space left on device");
    assert!(replay.stderr.contains("the batch was processed"), "{}", replay.stderr);
    assert!(totals(&replay).starts_with("totals: 3 processed"), "the summary still goes to stderr: {replay:?}");

    let again = run_into(&binary("points"), &["replay", ORDERS, "--state", state], closed_pipe());
    assert_output_error("replay | head -c0", &again, "Broken pipe");
    assert!(totals(&again).starts_with("totals: 0 processed, 3 duplicate"), "the first replay committed: {again:?}");
}
