//! Chaos run on the local AWS API through the `poll` path: orders published with duplicates
//! re-sent and poison bodies mixed in; handlers failing at random (transient errors, panics,
//! records slow enough to cross the visibility deadline); DynamoDB refusing connections for a
//! few seconds; pollers killed with SIGKILL and restarted mid-batch. At the end the invariants
//! are checked from the stores themselves: nothing lost, nothing doubled, every poison message
//! in its DLQ and nothing else there, no claim stuck `IN_PROGRESS`.
//!
//! Retry control is on, as a careful deployment would run it: transient failures back off
//! (`SQS_KIT_BACKOFF`, jittered, capped at a few visibility timeouts) and poison goes straight to
//! the DLQ (`SQS_KIT_DEAD_LETTER`); the redrive policy is still what catches a message that keeps
//! failing transiently.
//!
//! `CHAOS_ORDERS` sizes it (default 1,000, about 3 minutes on 2 cores); `scripts/chaos` runs a
//! larger one.
//! `CHAOS_KEEP_LOGS=1` keeps the pollers' logs (their path is printed at the start).

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{binary, local_aws, run, Run, Topology};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const FUNCTIONS: [(&str, &str); 4] =
    [("EmailFunction", "email"), ("ShippingFunction", "shipping"), ("InventoryFunction", "inventory"), ("PointsFunction", "points")];
const DLQS: [&str; 4] = ["EmailDLQ", "ShippingDLQ", "InventoryDLQ", "PointsDLQ"];
const SENDER: &str = "chaos@example.com";
const STOCK: i64 = 1_000_000;
const CUSTOMERS: usize = 40;
/// 20 % transient errors, 1 % panics, 1 % of attempts slower than the visibility timeout.
const FAULTS: &str = "flaky:20,panic:1,slow:4000:1";
const VISIBILITY_S: u64 = 3;
/// How long the pollers are killed and DynamoDB is cut off.
const CHAOS_WINDOW: Duration = Duration::from_secs(40);
/// The retry budget of a message is `MAX_RECEIVES` receives, one per visibility timeout. It must
/// outlast the chaos, as a queue's must outlast the longest outage it is meant to ride out: a
/// failed message comes back every 3 s ahead of the backlog, and during the chaos about half of
/// its attempts fail (a third of the time DynamoDB is away, and 20 % fail on their own). With
/// 10 receives a valid order once reached its DLQ; in the runs measured since, the unluckiest
/// valid message failed 8 times. Each receive more costs the poison messages 3 s on their way
/// to the DLQs, which the run waits for.
const MAX_RECEIVES: u64 = 16;
/// Backoff from 1 s to 8 s with full jitter: a valid message's 16 receives then take about a
/// minute on average, more than the 40 s of chaos, where a fixed 3 s timeout spends them in 48 s.
const BACKOFF: &str = "base=1,cap=8,jitter=full";

fn order(n: usize) -> Value {
    e2e::generated_order(n, &format!("chaos-evt-{n}"), &format!("CHAOS-{n}"), &format!("CUST-{}", n % CUSTOMERS))
}

/// A TCP proxy in front of the local DynamoDB endpoint that can refuse service: during an
/// outage it closes new and open connections, as an unreachable endpoint would.
struct Outage {
    refusing: Arc<AtomicBool>,
    port: u16,
}

async fn dynamodb_proxy(upstream: String) -> Outage {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let refusing = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&refusing);
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { continue };
            if flag.load(Ordering::SeqCst) {
                let _ = client.shutdown().await;
                continue;
            }
            let (flag, upstream) = (Arc::clone(&flag), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                let outage = async {
                    while !flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                tokio::select! {
                    _ = copy => {}
                    _ = outage => {}
                }
            });
        }
    });
    Outage { refusing, port }
}

struct Chaos {
    topology: Topology,
    logs: tempfile::TempDir,
}

impl Chaos {
    fn state(&self, function: &str, args: &[&str]) -> Run {
        self.topology.state(function, args)
    }

    fn spawn_poller(&self, function: &str, generation: usize) -> Child {
        let log = std::fs::File::create(self.logs.path().join(format!("{function}-{generation}.log"))).unwrap();
        let mut poller = self.topology.poller(function, 20);
        // moto applies concurrent transactions on one item without isolation, where DynamoDB
        // serializes them (and fails the loser's condition). Two cases would then double an
        // effect in moto but not in DynamoDB, and are kept out so that the check is about this
        // code: two orders' stock updates at once (inventory runs one record at a time), and
        // the SDK's immediate retry of a request whose connection the outage cut while moto
        // was still applying it (no SDK retries: the record fails and SQS redelivers it).
        poller.env("AWS_MAX_ATTEMPTS", "1");
        if function == "InventoryFunction" {
            poller.env("SQS_KIT_MAX_CONCURRENCY", "1");
        }
        poller
            .env("SQS_KIT_FAULT", FAULTS)
            // The injected panics are expected: their backtraces would bury the log lines.
            .env("RUST_BACKTRACE", "0")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    }

    /// The pollers' log lines about one message: why it failed each time.
    fn history(&self, message_id: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(self.logs.path()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            lines.extend(text.lines().filter(|line| line.contains(message_id)).map(|line| format!("{file}: {line}")));
        }
        lines.sort_by(|a, b| a.split_once(": ").map(|(_, l)| l).cmp(&b.split_once(": ").map(|(_, l)| l)));
        lines
    }

    /// Sums a metric over every embedded-metric line the pollers wrote.
    fn metric(&self, name: &str) -> u64 {
        let mut total = 0;
        for entry in std::fs::read_dir(self.logs.path()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            for line in text.lines().filter(|line| line.starts_with('{') && line.contains("\"_aws\"")) {
                if let Ok(document) = serde_json::from_str::<Value>(line) {
                    total += document[name].as_u64().unwrap_or(0);
                }
            }
        }
        total
    }
}

/// Every item of a DynamoDB table.
async fn scan(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    dynamodb.scan().table_name(table).into_paginator().items().send().collect::<Result<Vec<_>, _>>().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_loses_nothing_and_doubles_nothing() {
    let Some(config) = local_aws().await else { return };
    let orders_count: usize = std::env::var("CHAOS_ORDERS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let started = Instant::now();
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let outage = dynamodb_proxy(upstream).await;
    let mut topology = Topology::local_up("chaos", VISIBILITY_S, MAX_RECEIVES);
    topology.extra_env.push(("EMAIL_SENDER".into(), SENDER.into()));
    topology.extra_env.push(("SQS_KIT_BACKOFF".into(), BACKOFF.into()));
    topology.extra_env.push(("SQS_KIT_DEAD_LETTER".into(), "redrive-policy".into()));
    topology.extra_env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), format!("http://127.0.0.1:{}", outage.port)));
    // CHAOS_KEEP_LOGS keeps the pollers' logs for a look after the run.
    let keep_logs = std::env::var_os("CHAOS_KEEP_LOGS").is_some();
    let chaos = Chaos { topology, logs: tempfile::Builder::new().disable_cleanup(keep_logs).tempdir().unwrap() };
    eprintln!("poller logs: {}", chaos.logs.path().display());
    e2e::verify_ses_identity(&config, SENDER).await;
    let levels: Vec<Value> = e2e::SKUS.iter().map(|(sku, _)| json!({"sku": sku, "available": STOCK})).collect();
    let seed = chaos.logs.path().join("stock.json");
    std::fs::write(&seed, Value::Array(levels).to_string()).unwrap();
    chaos.state("InventoryFunction", &["seed", seed.to_str().unwrap()]);

    // The orders, 10 % of them re-sent, and 1 % poison: one body that is not JSON at all (the
    // FIFO queues group it as "default"), the others JSON that is not an order, each in a group
    // of its own: moto hands out a FIFO group's messages one receive at a time, so poison
    // sharing a group would reach its DLQ one message after the other.
    let orders: Vec<Value> = (0..orders_count).map(order).collect();
    let poison_count = (orders_count / 100).max(2);
    let mut bodies: Vec<Value> = orders.clone();
    bodies.push(Value::String(r#"{"eventId": "poison-0", "items": ["#.to_owned()));
    bodies.extend((1..poison_count).map(|i| json!({"eventId": format!("poison-{i}"), "customerId": format!("POISON-{i}"), "items": []})));
    bodies.extend(orders.iter().step_by(10).cloned());
    let file = chaos.logs.path().join("bodies.json");
    std::fs::write(&file, Value::Array(bodies.clone()).to_string()).unwrap();
    let topic = chaos.topology.json["topics"]["OrdersTopic"].as_str().unwrap();
    // As the pipeline publishes: in order per customer, the re-sent orders deduplicated by
    // their eventId.
    let publish =
        ["publish", "--topic-arn", topic, "--file", file.to_str().unwrap(), "--group-by", "/customerId", "--dedup-by", "/eventId"];
    let published = run(&binary("sqs-kit"), publish, &[]);
    assert_eq!(published.code, Some(0), "{published:?}");

    // Pollers, killed and restarted at random, and DynamoDB outages, until the queues drain.
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queues: Vec<String> = FUNCTIONS.iter().map(|(f, _)| chaos.topology.queue_url(f).to_owned()).collect();
    let mut pollers: Vec<Child> = FUNCTIONS.iter().map(|(f, _)| chaos.spawn_poller(f, 0)).collect();
    let (mut kills, mut outages, mut generation) = (0, 0, 1);
    let chaos_until = Instant::now() + CHAOS_WINDOW;
    // moto manages a few dozen deliveries a second: give larger runs time to drain.
    let deadline = Instant::now() + Duration::from_secs(300.max(orders_count as u64 * 2));
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if Instant::now() < chaos_until {
            // Every 2 s one of: kill and restart a poller, a 3 s DynamoDB outage, or nothing.
            match generation % 3 {
                0 => {
                    let victim = generation % pollers.len();
                    let _ = pollers[victim].kill();
                    let _ = pollers[victim].wait();
                    pollers[victim] = chaos.spawn_poller(FUNCTIONS[victim].0, generation);
                    kills += 1;
                }
                1 => {
                    outage.refusing.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    outage.refusing.store(false, Ordering::SeqCst);
                    outages += 1;
                }
                _ => {}
            }
            generation += 1;
        }
        let mut depth = 0;
        for queue in &queues {
            depth += e2e::queue_depth(&sqs, queue).await;
        }
        if depth == 0 && Instant::now() >= chaos_until {
            break;
        }
        assert!(Instant::now() < deadline, "the queues did not drain in time ({depth} messages left)");
        for (index, poller) in pollers.iter_mut().enumerate() {
            if poller.try_wait().unwrap().is_some() {
                *poller = chaos.spawn_poller(FUNCTIONS[index].0, generation);
                generation += 1;
            }
        }
    }
    for poller in &mut pollers {
        let _ = poller.kill();
        let _ = poller.wait();
    }

    // The invariants, from the stores, counted in orders: an order whose effect is missing in a
    // function is lost there; an effect present twice is doubled.
    let (mut lost, mut doubled) = (0, 0);
    let emails = chaos.state("EmailFunction", &["outbox", "--function", "email"]).json();
    let mut mailed: HashMap<String, usize> = HashMap::new();
    for mail in emails.as_array().unwrap() {
        *mailed.entry(mail["orderId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table =
        |function: &str, variable: &str| chaos.topology.json["functions"][function]["environment"][variable].as_str().unwrap().to_owned();
    let text = |item: &HashMap<String, AttributeValue>, name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let shipments: HashMap<String, String> = scan(&dynamodb, &table("ShippingFunction", "SHIPMENTS_TABLE"))
        .await
        .iter()
        .map(|item| (text(item, "orderId"), text(item, "status")))
        .collect();
    let reservations: HashMap<String, String> = scan(&dynamodb, &table("InventoryFunction", "STOCK_TABLE"))
        .await
        .iter()
        .filter_map(|item| Some((text(item, "pk").strip_prefix("ORDER#")?.to_owned(), text(item, "status"))))
        .collect();
    let mut reserved: BTreeMap<&str, i64> = BTreeMap::new();
    let mut accruals: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for order in &orders {
        let order_id = order["orderId"].as_str().unwrap();
        match mailed.get(order_id).copied().unwrap_or(0) {
            0 => {
                eprintln!("lost: no e-mail for {order_id}");
                lost += 1
            }
            1 => {}
            _ => doubled += 1,
        }
        if shipments.get(order_id).map(String::as_str) != Some("CREATED") {
            eprintln!("lost: the shipment of {order_id} is {:?}", shipments.get(order_id));
            lost += 1;
        }
        if reservations.get(order_id).map(String::as_str) != Some("RESERVED") {
            eprintln!("lost: the reservation of {order_id} is {:?}", reservations.get(order_id));
            lost += 1;
        }
        for item in order["items"].as_array().unwrap() {
            *reserved.entry(item["sku"].as_str().unwrap()).or_default() += item["quantity"].as_i64().unwrap();
        }
        accruals.entry(order["customerId"].as_str().unwrap().to_owned()).or_default().push(order.clone());
    }
    // Stock: what was taken must be exactly what the reservations hold.
    for level in chaos.state("InventoryFunction", &["stock"]).json().as_array().unwrap() {
        let taken = STOCK - level["available"].as_i64().unwrap();
        let expected = reserved.get(level["sku"].as_str().unwrap()).copied().unwrap_or(0);
        if taken > expected {
            doubled += 1;
        } else if taken < expected {
            lost += 1;
        }
    }
    // Points: one accrual per order, and a balance that is the sum of the ledger.
    for (customer, customer_orders) in &accruals {
        let account = chaos.state("PointsFunction", &["balance", customer]).json();
        let ledger = account["ledger"].as_array().unwrap();
        for order in customer_orders {
            let entries = ledger.iter().filter(|e| e["orderId"] == order["orderId"] && e["kind"] == "accrual").count();
            match entries {
                0 => lost += 1,
                1 => {}
                _ => doubled += 1,
            }
        }
        let ledger_sum: i64 = ledger.iter().map(|e| e["points"].as_i64().unwrap()).sum();
        let expected: i64 = customer_orders.iter().map(|o| o["totalAmount"].as_i64().unwrap() / 100).sum();
        assert_eq!(account["balance"], ledger_sum, "{customer}: the balance is the sum of the ledger");
        assert_eq!(ledger_sum, expected, "{customer}: one accrual of 1 % per order");
    }
    let mut dead_lettered = 0;
    for dlq in DLQS {
        let url = chaos.topology.json["dlqs"][dlq].as_str().unwrap();
        let peek = run(&binary("sqs-kit"), ["dlq", "peek", "--queue-url", url, "--max", "1000"], &[]);
        let messages = peek.json();
        let messages = messages.as_array().unwrap();
        let (poison, valid): (Vec<&Value>, Vec<&Value>) = messages.iter().partition(|m| m["body"].to_string().contains("poison-"));
        for message in &valid {
            let id = message["messageId"].as_str().unwrap_or_default();
            eprintln!("{dlq} holds valid message {id} ({} receives); its history:", message["receiveCount"]);
            for line in chaos.history(id) {
                eprintln!("  {line}");
            }
        }
        assert!(valid.is_empty(), "{dlq} holds {} valid messages (their history is above)", valid.len());
        // A poller killed between a poison's send to the DLQ and its delete sends it again on
        // the next receive: a standard DLQ may hold two copies (at least once), never none.
        let distinct: std::collections::BTreeSet<String> = poison.iter().map(|m| m["body"].to_string()).collect();
        assert_eq!(distinct.len(), poison_count, "{dlq} must hold every poison message: {messages:?}");
        dead_lettered += messages.len();
    }
    // Claims left IN_PROGRESS: every claim's deadline (3 s) passed long ago. The tables are
    // per function, or one shared table when the topology has one.
    let mut idempotency_tables: Vec<String> = FUNCTIONS.iter().map(|(function, _)| table(function, "IDEMPOTENCY_TABLE")).collect();
    idempotency_tables.dedup();
    let mut stuck = 0;
    for idempotency_table in &idempotency_tables {
        stuck += scan(&dynamodb, idempotency_table).await.iter().filter(|item| text(item, "status") == "IN_PROGRESS").count();
    }

    let processed = chaos.metric("RecordsProcessed");
    let duplicates = chaos.metric("DuplicatesSkipped");
    let retried = chaos.metric("RecordsFailedTransient") + chaos.metric("RecordsNotAttempted");
    let forwarded = chaos.metric("RecordsDeadLettered");
    println!(
        "| chaos run ({orders_count} orders, faults {FAULTS}, backoff {BACKOFF}, {kills} poller kills, {outages} DynamoDB outages) | |"
    );
    println!("|---|---|");
    println!("| messages published to the topic | {} |", bodies.len());
    println!("| records processed (4 functions) | {processed} |");
    println!("| duplicates skipped | {duplicates} |");
    println!("| record attempts retried | {retried} |");
    println!("| messages dead-lettered | {dead_lettered} |");
    println!("| of them sent by the functions at the first failure | {forwarded} |");
    println!("| claims stuck IN_PROGRESS | {stuck} |");
    println!("| lost | {lost} |");
    println!("| doubled | {doubled} |");
    println!("| wall time | {:.0} s |", started.elapsed().as_secs_f64());
    println!("| throughput | {:.1} deliveries/s |", (processed + duplicates) as f64 / started.elapsed().as_secs_f64());
    assert_eq!(lost, 0, "every valid order has all four effects");
    assert_eq!(doubled, 0, "no effect happened twice");
    assert_eq!(stuck, 0, "no claim is left IN_PROGRESS");
    assert!(kills > 0 && outages > 0, "the chaos happened");
}
