//! The whole pipeline on the local AWS API (moto), as a user runs it: `sqs-kit local up` from
//! template.yaml, `inventory seed`, `sqs-kit publish` to the SNS FIFO topic, the four functions'
//! `poll` (4 batches in flight each) until the queues drain, then the effects read back from
//! the stores; poison messages end in every DLQ after maxReceiveCount receives (and `sqs-kit
//! local alarms` says the template's alarms on dead letters and permanent failures went off,
//! after staying OK through a clean run), and `sqs-kit dlq redrive` after the fix brings their
//! effects in exactly once.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Stdio};

use e2e::{binary, local_aws, run, unique_name, Run, Topology};
use serde_json::{json, Value};

const FUNCTIONS: [(&str, &str); 4] =
    [("EmailFunction", "email"), ("ShippingFunction", "shipping"), ("InventoryFunction", "inventory"), ("PointsFunction", "points")];
const DLQS: [&str; 4] = ["EmailDLQ", "ShippingDLQ", "InventoryDLQ", "PointsDLQ"];
const SENDER: &str = "orders@example.com";
/// Orders whose body contains this fail in every function while the "bug" is in place.
const POISON: &str = "POISON";
const STOCK: i64 = 1_000;
/// Batches each poller keeps in flight, as the event source mappings run several invocations
/// at once: batches of one queue then race for the same records and stock as under Lambda.
const POLL_CONCURRENCY: usize = 4;
const VISIBILITY_TIMEOUT_S: u64 = 10;
/// The idle time runs from the poison's first redelivery and must outlast its second, after
/// which the next receive moves it to the DLQ: more than one visibility timeout.
const IDLE_EXIT_S: u64 = 2 * VISIBILITY_TIMEOUT_S;

fn order(n: usize, poison: bool) -> Value {
    let marker = if poison { POISON } else { "ok" };
    // Poison orders have a customer of their own: on a FIFO queue a failing message holds back
    // the later messages of its group, whose receive counts then grow with its own and which
    // the redrive policy dead-letters with it.
    let customer = if poison { "CUST-POISON".to_owned() } else { format!("CUST-{}", n % 7) };
    e2e::generated_order(n, &format!("evt-{marker}-{n}"), &format!("ORD-{marker}-{n}"), &customer)
}

struct Pipeline {
    topology: Topology,
    dir: tempfile::TempDir,
}

impl Pipeline {
    fn run_function(&self, function: &str, args: &[&str]) -> Run {
        self.topology.state(function, args)
    }

    fn publish(&self, bodies: &[Value]) {
        let file = self.dir.path().join(format!("bodies-{}.json", unique_name("p")));
        std::fs::write(&file, Value::Array(bodies.to_vec()).to_string()).unwrap();
        let topic = self.topology.json["topics"]["OrdersTopic"].as_str().unwrap();
        // The pipeline's FIFO queues: in order per customer, each event once.
        let publish =
            ["publish", "--topic-arn", topic, "--file", file.to_str().unwrap(), "--group-by", "/customerId", "--dedup-by", "/eventId"];
        let published = run(&binary("sqs-kit"), publish, &[]);
        assert_eq!(published.code, Some(0), "{published:?}");
        assert_eq!(published.json()["sent"], bodies.len());
    }

    /// Runs the four pollers side by side until their queues stay idle, with `fault` rules, each
    /// with [`POLL_CONCURRENCY`] batches in flight.
    /// Each poller's log (its metric lines among them) goes to a file of its own in `logs/`,
    /// which `sqs-kit local alarms --metrics` reads.
    fn drain(&self, fault: &str) {
        let logs = self.dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let pollers: Vec<(String, std::path::PathBuf, Child)> = FUNCTIONS
            .iter()
            .map(|(function, _)| {
                let log = logs.join(format!("{function}-{}.log", unique_name("drain")));
                let mut command = self.topology.poller(function, IDLE_EXIT_S);
                command.args(["--concurrency", &POLL_CONCURRENCY.to_string()]);
                // See tests/tests/chaos.rs: moto does not isolate concurrent transactions.
                command.env("SQS_KIT_MAX_CONCURRENCY", if *function == "InventoryFunction" { "1" } else { "10" });
                command
                    .env("SQS_KIT_FAULT", fault)
                    .env("LOG_LEVEL", "warn")
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).unwrap());
                (function.to_string(), log, command.spawn().unwrap())
            })
            .collect();
        for (function, log, mut poller) in pollers {
            let status = poller.wait().unwrap();
            assert!(status.success(), "{function}: {status}; its log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
    }

    /// `sqs-kit local alarms` over the stack and the pollers' logs so far: its run, and each
    /// alarm's state by logical id. The state file (earlier queue depths) lasts the test.
    fn alarms(&self) -> (Run, BTreeMap<String, String>) {
        let (stack, logs, state) = (self.topology.stack(), self.dir.path().join("logs"), self.dir.path().join("alarms.json"));
        let args = ["local", "alarms", "--stack-name", stack, "--metrics", logs.to_str().unwrap(), "--state", state.to_str().unwrap()];
        let evaluated = run(&binary("sqs-kit"), args, &[]);
        assert!(matches!(evaluated.code, Some(0 | 1)), "{evaluated:?}");
        let states = evaluated
            .stdout
            .lines()
            .map(|line| {
                let alarm: Value = serde_json::from_str(line).unwrap();
                (alarm["logicalId"].as_str().unwrap().to_owned(), alarm["state"].as_str().unwrap().to_owned())
            })
            .collect();
        (evaluated, states)
    }

    /// The order ids of the messages in a DLQ.
    fn dead_letters(&self, dlq: &str) -> Vec<String> {
        let url = self.topology.json["dlqs"][dlq].as_str().unwrap();
        let peek = run(&binary("sqs-kit"), ["dlq", "peek", "--queue-url", url], &[]);
        assert_eq!(peek.code, Some(0), "{peek:?}");
        let mut orders: Vec<String> =
            peek.json().as_array().unwrap().iter().map(|m| m["body"]["orderId"].as_str().unwrap_or("?").to_owned()).collect();
        orders.sort();
        orders
    }

    /// Checks every effect of `orders` against the stores: one e-mail, one shipment, one
    /// reservation and one accrual each, and nothing for any other order.
    fn assert_effects(&self, orders: &[Value]) {
        let emails = self.run_function("EmailFunction", &["outbox", "--function", "email"]).json();
        let mut mailed: HashMap<String, usize> = HashMap::new();
        for mail in emails.as_array().unwrap() {
            *mailed.entry(mail["orderId"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        assert_eq!(mailed.len(), orders.len(), "one e-mail per order: {mailed:?}");
        assert!(mailed.values().all(|&count| count == 1), "{mailed:?}");

        let mut reserved: BTreeMap<&str, i64> = BTreeMap::new();
        let mut points: BTreeMap<String, i64> = BTreeMap::new();
        for order in orders {
            let order_id = order["orderId"].as_str().unwrap();
            let shipment = self.run_function("ShippingFunction", &["status", order_id]);
            assert_eq!(shipment.code, Some(0), "{order_id}: {shipment:?}");
            assert_eq!(shipment.json()["status"], "CREATED");
            for item in order["items"].as_array().unwrap() {
                *reserved.entry(item["sku"].as_str().unwrap()).or_default() += item["quantity"].as_i64().unwrap();
            }
            *points.entry(order["customerId"].as_str().unwrap().to_owned()).or_default() += order["totalAmount"].as_i64().unwrap() / 100;
        }
        let stock = self.run_function("InventoryFunction", &["stock"]).json();
        for level in stock.as_array().unwrap() {
            let sku = level["sku"].as_str().unwrap();
            assert_eq!(level["available"], STOCK - reserved.get(sku).copied().unwrap_or(0), "{sku}");
        }
        for (customer, expected) in points {
            let account = self.run_function("PointsFunction", &["balance", &customer]).json();
            assert_eq!(account["balance"], expected, "{customer}: {account}");
        }
    }
}

/// The alarms an operator is paged by when records fail: each function's permanent failures
/// (its embedded metrics) and each DLQ's new dead letters (its depth).
fn watched_alarms() -> Vec<String> {
    ["Email", "Shipping", "Inventory", "Points"]
        .iter()
        .flat_map(|function| [format!("{function}PermanentFailuresAlarm"), format!("{function}DLQNewMessagesAlarm")])
        .collect()
}

#[tokio::test]
async fn the_pipeline_processes_every_order_once_and_dead_letters_then_redrives_poison() {
    let Some(config) = local_aws().await else { return };
    // Short visibility and 2 receives, so that poison reaches the DLQs within seconds; long
    // enough that a batch of 10 still fits when sixteen workers share two cores and moto.
    let mut topology = Topology::local_up("pipe", VISIBILITY_TIMEOUT_S, 2);
    topology.extra_env.push(("EMAIL_SENDER".into(), SENDER.into()));
    let pipeline = Pipeline { topology, dir: tempfile::tempdir().unwrap() };
    e2e::verify_ses_identity(&config, SENDER).await;
    let levels: Vec<Value> = e2e::SKUS.iter().map(|(sku, _)| json!({"sku": sku, "available": STOCK})).collect();
    let seed_file = pipeline.dir.path().join("stock.json");
    std::fs::write(&seed_file, Value::Array(levels).to_string()).unwrap();
    pipeline.run_function("InventoryFunction", &["seed", seed_file.to_str().unwrap()]);

    // A clean run: every order (and a re-sent few) once, and the alarms on dead letters and
    // failed records stay OK.
    let valid: Vec<Value> = (0..50).map(|n| order(n, false)).collect();
    pipeline.publish(&valid);
    pipeline.publish(&valid[..5]);
    pipeline.drain("");
    pipeline.assert_effects(&valid);
    let (clean, states) = pipeline.alarms();
    for alarm in watched_alarms() {
        assert_eq!(states[&alarm], "OK", "{alarm} after a clean run: {clean:?}");
    }

    // The "bug": poison orders fail permanently in every function until it is fixed; the
    // redrive policy moves them to the DLQs after their second receive, and the alarms on
    // dead letters and permanent failures go off.
    let poison: Vec<Value> = (50..53).map(|n| order(n, true)).collect();
    pipeline.publish(&poison);
    pipeline.drain(&format!("poison:{POISON}"));
    pipeline.assert_effects(&valid);
    let poison_ids: Vec<String> = poison.iter().map(|o| o["orderId"].as_str().unwrap().to_owned()).collect();
    for dlq in DLQS {
        assert_eq!(pipeline.dead_letters(dlq), poison_ids, "{dlq} holds the three poison messages");
    }
    let (alarmed, states) = pipeline.alarms();
    assert_eq!(alarmed.code, Some(1), "an alarm in ALARM exits 1: {alarmed:?}");
    for alarm in watched_alarms() {
        assert_eq!(states[&alarm], "ALARM", "{alarm} once the poison arrived: {alarmed:?}");
    }

    // The fix is deployed: redrive every DLQ, and the poison orders go through once.
    for dlq in DLQS {
        let url = pipeline.topology.json["dlqs"][dlq].as_str().unwrap();
        let moved = run(&binary("sqs-kit"), ["dlq", "redrive", "--queue-url", url], &[]);
        assert_eq!(moved.code, Some(0), "{moved:?}");
        assert_eq!(moved.json()["moved"], 3, "{dlq}: {moved:?}");
    }
    pipeline.drain("");
    let mut everything = valid;
    everything.extend(poison);
    pipeline.assert_effects(&everything);
    for dlq in DLQS {
        assert_eq!(pipeline.dead_letters(dlq), Vec::<String>::new(), "{dlq} is empty after the redrive");
    }
}
