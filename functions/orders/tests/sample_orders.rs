//! The `sample-orders` binary: valid orders as a JSON list on stdout, and bounded flags.

use std::process::Command;

use orders::OrderEvent;

/// Exit status, stdout, stderr.
fn sample_orders(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sample-orders")).args(args).output().unwrap();
    (output.status.code(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

#[test]
fn it_prints_valid_orders_numbered_from_the_first() {
    let (code, stdout, stderr) = sample_orders(&["--count", "7", "--first-order", "5000"]);
    assert_eq!(code, Some(0), "{stderr}");
    // Deserializing an OrderEvent validates it: items, quantities, the total.
    let orders: Vec<OrderEvent> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(orders.len(), 7);
    let ids: Vec<&str> = orders.iter().map(|order| order.order_id.as_str()).collect();
    assert_eq!(ids, ["ORD-5000", "ORD-5001", "ORD-5002", "ORD-5003", "ORD-5004", "ORD-5005", "ORD-5006"]);
    for order in &orders {
        assert!(order.items.iter().all(|item| ["SKU-KEYBOARD", "SKU-MOUSE", "SKU-PAD"].contains(&item.sku.as_str())));
        assert!(order.customer_id.starts_with("CUST-"));
    }

    let (_, stdout, _) = sample_orders(&["--count", "1"]);
    let orders: Vec<OrderEvent> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(orders[0].order_id, "ORD-1001", "the default first order");
}

#[test]
fn counts_and_order_numbers_are_bounded() {
    let refused = |args: &[&str], range: &str| {
        let (code, stdout, stderr) = sample_orders(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(range), "{args:?}: {range} not in {stderr}");
    };
    refused(&["--count", "0"], "a whole number from 1 to 100000");
    refused(&["--count", "100001"], "a whole number from 1 to 100000");
    refused(&[], "--count");
    // Order numbers past the range once overflowed (a panic) or wrapped around.
    refused(&["--count", "2", "--first-order", "18446744073709551615"], "a whole number from 0 to 4294967295");
    refused(&["--count", "2", "--first-order", "18446744073709551616"], "a whole number from 0 to 4294967295");
    refused(&["--count", "2", "--first-order=-1"], "a whole number from 0 to 4294967295");

    let (code, stdout, stderr) = sample_orders(&["--count", "2", "--first-order", "4294967295"]);
    assert_eq!(code, Some(0), "{stderr}");
    let orders: Vec<OrderEvent> = serde_json::from_str(&stdout).unwrap();
    let ids: Vec<&str> = orders.iter().map(|order| order.order_id.as_str()).collect();
    assert_eq!(ids, ["ORD-4294967295", "ORD-4294967296"]);
}

#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sample-orders")).args(["--count", "3"]).stdout(full).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end(), "error: cannot write to standard output: No space left on device (os error 28)");
}
