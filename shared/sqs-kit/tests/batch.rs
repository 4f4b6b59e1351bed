//! The batch processor's contract: which records are reported failed, in which order records
//! run, and what happens at the deadline.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{event, fifo_record, invocation, record};
use serde::Deserialize;
use serde_json::json;
use sqs_kit::batch::{BatchError, Skip};
use sqs_kit::{handler_fn, typed, AllFailedPolicy, BatchConfig, BatchProcessor, FifoFailureMode, Outcome, RecordContext, RecordError};

#[derive(Debug, Deserialize)]
struct Job {
    action: String,
    #[serde(default)]
    sleep_ms: u64,
}

/// A handler driven by the body: `ok`, `fail` (transient), `poison` (permanent) or `panic`; it
/// logs the message ids it was called with and the time left when it started.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<(String, Duration)>>>);

impl Calls {
    fn ids(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(id, _)| id.clone()).collect()
    }
}

fn processor(calls: &Calls, config: BatchConfig) -> BatchProcessor<impl sqs_kit::RecordService> {
    let calls = calls.clone();
    let handler = handler_fn(move |job: Job, cx: RecordContext| {
        let calls = calls.clone();
        async move {
            calls.0.lock().unwrap().push((cx.meta.message_id.clone(), cx.invocation.remaining()));
            tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
            match job.action.as_str() {
                "ok" => Ok(json!({"done": cx.meta.message_id})),
                "fail" => Err(RecordError::transient("the downstream service timed out")),
                "poison" => Err(RecordError::permanent("the order has no items")),
                "panic" => panic!("unexpected state in {}", cx.meta.message_id),
                other => Err(RecordError::permanent(format!("unknown action {other}"))),
            }
        }
    });
    BatchProcessor::new(typed(handler), config)
}

fn job(action: &str) -> String {
    json!({"action": action}).to_string()
}

fn slow(action: &str, sleep_ms: u64) -> String {
    json!({"action": action, "sleep_ms": sleep_ms}).to_string()
}

fn failure_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<&str> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
}

#[tokio::test]
async fn mixed_batch_reports_exactly_the_failing_records_in_order() {
    let calls = Calls::default();
    let batch = event(vec![
        record("ok-1", &job("ok")),
        record("not-json", "{this is not json"),
        record("wrong-shape", r#"{"orderId": "ORD-1"}"#),
        record("panics", &job("panic")),
        record("ok-2", &job("ok")),
        record("transient", &job("fail")),
    ]);
    let response = processor(&calls, BatchConfig::default()).handle_event(batch, invocation(Duration::from_secs(30))).await.unwrap();

    assert_eq!(failure_ids(&response), ["not-json", "wrong-shape", "panics", "transient"]);
    let mut called = calls.ids();
    called.sort();
    assert_eq!(called, ["ok-1", "ok-2", "panics", "transient"], "bodies that do not parse never reach the handler");
}

#[tokio::test]
async fn response_serializes_as_lambda_expects() {
    let calls = Calls::default();
    let response = processor(&calls, BatchConfig::default())
        .handle_event(event(vec![record("a", &job("ok")), record("b", &job("fail"))]), invocation(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(serde_json::to_string(&response).unwrap(), r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#);
}

#[tokio::test]
async fn outcomes_say_why_each_record_failed() {
    let calls = Calls::default();
    let batch = event(vec![
        record("not-json", "nope"),
        record("wrong-shape", "{}"),
        record("panics", &job("panic")),
        record("poison", &job("poison")),
        record("ok", &job("ok")),
    ]);
    let report = processor(&calls, BatchConfig::default()).process(batch, invocation(Duration::from_secs(30))).await.unwrap();
    let reason = |i: usize| match &report.records[i].outcome {
        Outcome::Failed(error) => (error.kind(), error.reason().to_owned()),
        other => panic!("record {i} should have failed, got {other:?}"),
    };
    let (kind, text) = reason(0);
    assert!(kind == sqs_kit::FailureKind::Permanent && text.contains("not valid JSON"), "{text}");
    let (kind, text) = reason(1);
    assert!(kind == sqs_kit::FailureKind::Permanent && text == "the body is not a valid Job: missing field `action`", "{text}");
    let (kind, text) = reason(2);
    assert!(kind == sqs_kit::FailureKind::Transient && text.contains("panicked: unexpected state in panics"), "{text}");
    let (kind, text) = reason(3);
    assert!(kind == sqs_kit::FailureKind::Permanent && text == "the order has no items", "{text}");
    assert_eq!(report.records[4].outcome, Outcome::Processed(json!({"done": "ok"})));
}

#[tokio::test]
async fn fifo_failure_holds_back_the_rest_of_its_group_only() {
    let calls = Calls::default();
    let batch = event(vec![
        fifo_record("a1", "A", &job("ok")),
        fifo_record("b1", "B", &job("ok")),
        fifo_record("a2", "A", &job("fail")),
        fifo_record("b2", "B", &job("ok")),
        fifo_record("a3", "A", &job("ok")),
        fifo_record("b3", "B", &job("ok")),
        fifo_record("a4", "A", &job("ok")),
    ]);
    let report = processor(&calls, BatchConfig::default()).process(batch, invocation(Duration::from_secs(30))).await.unwrap();

    assert_eq!(failure_ids(&report.response()), ["a2", "a3", "a4"]);
    let called = calls.ids();
    assert!(!called.contains(&"a3".to_owned()) && !called.contains(&"a4".to_owned()), "held-back records ran: {called:?}");
    for id in ["b1", "b2", "b3"] {
        assert!(called.contains(&id.to_owned()), "group B must be processed fully: {called:?}");
    }
    assert_eq!(report.records[4].outcome, Outcome::NotAttempted(Skip::GroupHeldBack { group: "A".into(), failed_message_id: "a2".into() }));
}

#[tokio::test]
async fn fifo_group_runs_in_order_even_when_earlier_records_are_slower() {
    let calls = Calls::default();
    let batch = event(vec![
        fifo_record("g1", "G", &slow("ok", 60)),
        fifo_record("g2", "G", &slow("ok", 30)),
        fifo_record("g3", "G", &slow("ok", 0)),
    ]);
    processor(&calls, BatchConfig::default()).process(batch, invocation(Duration::from_secs(30))).await.unwrap();
    assert_eq!(calls.ids(), ["g1", "g2", "g3"]);
}

#[tokio::test]
async fn fifo_groups_run_side_by_side() {
    let calls = Calls::default();
    let batch = event((0..5).map(|g| fifo_record(&format!("m{g}"), &format!("G{g}"), &slow("ok", 100))).collect());
    let started = Instant::now();
    processor(&calls, BatchConfig::default()).process(batch, invocation(Duration::from_secs(30))).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(400), "5 groups of 100 ms took {:?}", started.elapsed());
}

/// A fair queue's record: a standard queue's, with the `MessageGroupId` its producer set.
fn fair_record(id: &str, group: &str, body: &str) -> serde_json::Value {
    let mut record = record(id, body);
    record["attributes"]["MessageGroupId"] = json!(group);
    record
}

#[tokio::test]
async fn fair_queue_groups_neither_order_nor_hold_back() {
    let calls = Calls::default();
    // One tenant's records, the first failing, beside records that carry no group at all.
    let mut records: Vec<_> =
        (0..4).map(|i| fair_record(&format!("t{i}"), "tenant-1", &slow(if i == 0 { "fail" } else { "ok" }, 100))).collect();
    records.extend((0..3).map(|i| record(&format!("n{i}"), &slow("ok", 100))));
    let started = Instant::now();
    let report = processor(&calls, BatchConfig::default()).process(event(records), invocation(Duration::from_secs(30))).await.unwrap();

    assert_eq!(failure_ids(&report.response()), ["t0"], "only the failed record is reported");
    assert_eq!(calls.ids().len(), 7, "every record ran: {:?}", calls.ids());
    // Sequential, the seven 100 ms records would take 700 ms.
    assert!(started.elapsed() < Duration::from_millis(400), "a fair queue's batch ran one by one: {:?}", started.elapsed());
}

#[tokio::test]
async fn without_an_arn_only_a_sequence_number_makes_a_batch_fifo() {
    let without_arn = |mut record: serde_json::Value| {
        record.as_object_mut().unwrap().remove("eventSourceARN");
        record
    };
    // A group id alone: a fair queue's records, concurrent and independent.
    let fair = event(vec![without_arn(fair_record("a1", "A", &job("fail"))), without_arn(fair_record("a2", "A", &job("ok")))]);
    assert_eq!(sqs_kit::QueueKind::detect(&fair), sqs_kit::QueueKind::Standard);
    let calls = Calls::default();
    let report = processor(&calls, BatchConfig::default()).process(fair, invocation(Duration::from_secs(30))).await.unwrap();
    assert_eq!(failure_ids(&report.response()), ["a1"]);

    let fifo = event(vec![without_arn(fifo_record("a1", "A", &job("fail"))), without_arn(fifo_record("a2", "A", &job("ok")))]);
    assert_eq!(sqs_kit::QueueKind::detect(&fifo), sqs_kit::QueueKind::Fifo);
    let report = processor(&calls, BatchConfig::default()).process(fifo, invocation(Duration::from_secs(30))).await.unwrap();
    assert_eq!(failure_ids(&report.response()), ["a1", "a2"], "a2 is held back behind a1");
}

#[tokio::test]
async fn the_arn_decides_over_the_attributes() {
    // A FIFO queue's ARN makes the batch FIFO even if the records lack FIFO attributes, and a
    // standard queue's ARN keeps it standard even if they carry them.
    let mut fifo_without_sequence = fifo_record("f", "G", "{}");
    fifo_without_sequence["attributes"].as_object_mut().unwrap().remove("SequenceNumber");
    assert_eq!(sqs_kit::QueueKind::detect(&event(vec![fifo_without_sequence])), sqs_kit::QueueKind::Fifo);
    let mut standard_with_sequence = fair_record("s", "G", "{}");
    standard_with_sequence["attributes"]["SequenceNumber"] = json!("1");
    assert_eq!(sqs_kit::QueueKind::detect(&event(vec![standard_with_sequence])), sqs_kit::QueueKind::Standard);
}

#[tokio::test]
async fn fifo_records_without_a_group_hold_nothing_back() {
    let calls = Calls::default();
    let ungrouped = |id: &str, body: &str| {
        let mut record = fifo_record(id, "unused", body);
        record["attributes"].as_object_mut().unwrap().remove("MessageGroupId");
        record
    };
    let batch = event(vec![ungrouped("u1", &job("fail")), ungrouped("u2", &job("ok")), fifo_record("g1", "G", &job("ok"))]);
    let report = processor(&calls, BatchConfig::default()).process(batch, invocation(Duration::from_secs(30))).await.unwrap();
    assert_eq!(failure_ids(&report.response()), ["u1"]);
}

#[tokio::test]
async fn stop_batch_mode_stops_every_group_at_the_first_failure() {
    let calls = Calls::default();
    let config = BatchConfig::default().with_fifo_failure_mode(FifoFailureMode::StopBatch);
    let batch = event(vec![
        fifo_record("a1", "A", &job("ok")),
        fifo_record("b1", "B", &job("fail")),
        fifo_record("a2", "A", &job("ok")),
        fifo_record("c1", "C", &job("ok")),
    ]);
    let report = processor(&calls, config).process(batch, invocation(Duration::from_secs(30))).await.unwrap();
    assert_eq!(failure_ids(&report.response()), ["b1", "a2", "c1"]);
    assert_eq!(calls.ids(), ["a1", "b1"]);
    assert_eq!(report.records[3].outcome, Outcome::NotAttempted(Skip::BatchStopped { failed_message_id: "b1".into() }));
}

#[tokio::test]
async fn standard_records_run_concurrently_within_the_bound() {
    let calls = Calls::default();
    let batch = event((0..10).map(|i| record(&format!("m{i}"), &slow("ok", 100))).collect());
    let started = Instant::now();
    processor(&calls, BatchConfig::default()).process(batch.clone(), invocation(Duration::from_secs(30))).await.unwrap();
    let concurrent = started.elapsed();
    assert!(concurrent < Duration::from_millis(400), "10 records of 100 ms took {concurrent:?}");

    let started = Instant::now();
    let config = BatchConfig::default().with_max_concurrency(2);
    processor(&calls, config).process(batch, invocation(Duration::from_secs(30))).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500), "a bound of 2 must take 5 rounds, took {:?}", started.elapsed());
}

#[tokio::test]
async fn records_are_not_started_once_the_deadline_margin_is_reached() {
    let calls = Calls::default();
    let margin = Duration::from_millis(2000);
    let config = BatchConfig::default().with_deadline_margin(margin);
    // One FIFO group of 200 ms records with 2.3 s left: two start above the 2 s margin, the
    // third would start with ~1.9 s left.
    let batch = event((1..=5).map(|i| fifo_record(&format!("m{i}"), "G", &slow("ok", 200))).collect());
    let report = processor(&calls, config).process(batch, invocation(Duration::from_millis(2300))).await.unwrap();

    assert_eq!(calls.ids(), ["m1", "m2"]);
    for (id, remaining_at_start) in calls.0.lock().unwrap().iter() {
        assert!(*remaining_at_start >= margin, "{id} started with only {remaining_at_start:?} left");
    }
    assert_eq!(failure_ids(&report.response()), ["m3", "m4", "m5"]);
    assert!(matches!(report.records[2].outcome, Outcome::NotAttempted(Skip::Deadline { .. })));
}

#[tokio::test]
async fn a_record_still_running_at_the_deadline_is_abandoned_and_reported() {
    let calls = Calls::default();
    let config = BatchConfig::default().with_deadline_margin(Duration::from_millis(100));
    let batch = event(vec![record("quick", &job("ok")), record("stuck", &slow("ok", 5_000))]);
    let started = Instant::now();
    let report = processor(&calls, config).process(batch, invocation(Duration::from_millis(600))).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(600), "the batch must return before the deadline");
    assert_eq!(failure_ids(&report.response()), ["stuck"]);
    assert!(matches!(&report.records[1].outcome, Outcome::Failed(e) if e.reason().contains("abandoned")));
}

#[tokio::test]
async fn all_failed_batch_is_an_invocation_error_by_default() {
    let calls = Calls::default();
    let batch = event(vec![record("a", &job("fail")), record("b", "not json")]);
    let error =
        processor(&calls, BatchConfig::default()).handle_event(batch.clone(), invocation(Duration::from_secs(30))).await.unwrap_err();
    assert!(matches!(error, BatchError::AllFailed { count: 2, .. }), "{error}");

    let config = BatchConfig::default().with_all_failed(AllFailedPolicy::ReportFailures);
    let response = processor(&calls, config).handle_event(batch, invocation(Duration::from_secs(30))).await.unwrap();
    assert_eq!(failure_ids(&response), ["a", "b"]);
}

#[tokio::test]
async fn empty_batch_succeeds_with_no_failures() {
    let calls = Calls::default();
    let response =
        processor(&calls, BatchConfig::default()).handle_event(event(vec![]), invocation(Duration::from_secs(30))).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn record_without_message_id_fails_the_invocation_rather_than_being_lost() {
    let calls = Calls::default();
    let mut nameless = record("x", &job("ok"));
    nameless.as_object_mut().unwrap().remove("messageId");
    let error = processor(&calls, BatchConfig::default())
        .handle_event(event(vec![record("a", &job("ok")), nameless]), invocation(Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert!(matches!(error, BatchError::MissingMessageId { index: 1 }));
    assert!(calls.ids().is_empty(), "nothing runs when the batch cannot be reported");
}

#[tokio::test]
async fn sns_envelope_reaches_the_handler_unwrapped() {
    let calls = Calls::default();
    let envelope = json!({
        "Type": "Notification",
        "MessageId": "sns-1",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:orders.fifo",
        "Message": job("ok"),
    });
    let response = processor(&calls, BatchConfig::default())
        .handle_event(event(vec![record("wrapped", &envelope.to_string())]), invocation(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(calls.ids(), ["wrapped"]);
}

#[tokio::test]
async fn handler_sees_record_metadata() {
    let seen = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&seen);
    let handler = handler_fn(move |_: serde_json::Value, cx: RecordContext| {
        let sink = Arc::clone(&sink);
        async move {
            *sink.lock().unwrap() = Some((cx.meta.receive_count, cx.meta.message_group_id.clone(), cx.invocation.function_name.clone()));
            Ok::<_, RecordError>(())
        }
    });
    let mut fifo = fifo_record("m", "CUST-42", "{}");
    fifo["attributes"]["ApproximateReceiveCount"] = json!("3");
    BatchProcessor::new(typed(handler), BatchConfig::default())
        .process(event(vec![fifo]), invocation(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some((3, Some("CUST-42".to_owned()), "test-function".to_owned())));
}

// Retry control, against a queue port that records what it is asked and refuses what it is told.

mod retry_control {
    use std::collections::{BTreeMap, BTreeSet};

    use async_trait::async_trait;
    use proptest::prelude::*;
    use sqs_kit::retry::{Backoff, DeadLetterMessage, DeadLetterTarget, EntryFailure, Jitter, QueueActions, QueueError, VisibilityChange};

    use super::*;

    const DLQ: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-dlq";

    /// The calls made, and the message ids whose calls the queue refuses.
    #[derive(Debug, Default)]
    struct FakeQueue {
        refuse: BTreeSet<String>,
        /// The whole call fails (an outage), not single entries.
        down: bool,
        visibility: Mutex<Vec<(String, VisibilityChange)>>,
        sent: Mutex<Vec<(String, DeadLetterMessage)>>,
        redrive_lookups: Mutex<usize>,
    }

    fn outage(operation: &'static str, queue_url: &str) -> QueueError {
        QueueError { operation, queue_url: queue_url.to_owned(), source: "connection refused".into() }
    }

    #[async_trait]
    impl QueueActions for FakeQueue {
        async fn change_visibility(&self, queue_url: &str, changes: &[VisibilityChange]) -> Result<Vec<EntryFailure>, QueueError> {
            assert!(changes.len() <= sqs_kit::retry::VISIBILITY_BATCH_LIMIT);
            if self.down {
                return Err(outage("ChangeMessageVisibilityBatch", queue_url));
            }
            let mut refused = Vec::new();
            for change in changes {
                if self.refuse.contains(&change.message_id) {
                    refused.push(EntryFailure::new(&change.message_id, "ReceiptHandleIsInvalid"));
                } else {
                    self.visibility.lock().unwrap().push((queue_url.to_owned(), change.clone()));
                }
            }
            Ok(refused)
        }

        async fn send(&self, queue_url: &str, message: &DeadLetterMessage) -> Result<(), QueueError> {
            let id = message.message_attributes[sqs_kit::retry::attributes::SOURCE_MESSAGE_ID].string_value.clone().unwrap();
            if self.down || self.refuse.contains(&id) {
                return Err(outage("SendMessage", queue_url));
            }
            self.sent.lock().unwrap().push((queue_url.to_owned(), message.clone()));
            Ok(())
        }

        async fn dead_letter_queue_arn(&self, _queue_url: &str) -> Result<Option<String>, QueueError> {
            *self.redrive_lookups.lock().unwrap() += 1;
            Ok(Some("arn:aws:sqs:eu-west-1:123456789012:orders-dlq".into()))
        }
    }

    fn with_receives(mut record: serde_json::Value, receives: u32) -> serde_json::Value {
        record["attributes"]["ApproximateReceiveCount"] = json!(receives.to_string());
        record
    }

    fn backoff() -> Backoff {
        Backoff::exponential(Duration::from_secs(2), Duration::from_secs(20)).unwrap().with_jitter(Jitter::None)
    }

    /// What a record does: succeed, fail transiently or permanently, after `receives` deliveries.
    #[derive(Clone, Debug)]
    struct Case {
        action: &'static str,
        receives: u32,
        refused: bool,
    }

    fn case() -> impl Strategy<Value = Case> {
        (prop::sample::select(vec!["ok", "fail", "poison"]), 1u32..8, prop::bool::weighted(0.3))
            .prop_map(|(action, receives, refused)| Case { action, receives, refused })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// No record is lost whatever the queue refuses: a record leaves the failure list only
        /// by succeeding or by being accepted by the dead-letter queue (once, with its body as
        /// it came); every transient failure, and nothing else, gets its backoff, unless the
        /// queue refused it; and without the queue port's acceptance the outcome is as if retry
        /// control were off. On a standard queue and on a FIFO queue of one group.
        #[test]
        fn nothing_is_lost_and_each_control_acts_on_its_own_failures(cases in prop::collection::vec(case(), 1..12), fifo in any::<bool>(), down in any::<bool>()) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let refuse: BTreeSet<String> = cases.iter().enumerate().filter(|(_, c)| c.refused).map(|(i, _)| format!("m{i}")).collect();
            let queue = Arc::new(FakeQueue { refuse: refuse.clone(), down, ..FakeQueue::default() });
            let records: Vec<serde_json::Value> = cases
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let id = format!("m{i}");
                    let body = job(c.action);
                    with_receives(if fifo { fifo_record(&id, "g", &body) } else { record(&id, &body) }, c.receives)
                })
                .collect();
            let config = BatchConfig::default().with_backoff(backoff()).with_dead_letter(DeadLetterTarget::Queue(DLQ.into()));
            let calls = Calls::default();
            let with_control = processor(&calls, config).with_queue(queue.clone());
            let report = runtime.block_on(with_control.process(event(records.clone()), invocation(Duration::from_secs(30)))).unwrap();
            let without = runtime.block_on(processor(&Calls::default(), BatchConfig::default()).process(event(records), invocation(Duration::from_secs(30)))).unwrap();

            let sent: BTreeMap<String, DeadLetterMessage> = queue.sent.lock().unwrap().iter().map(|(url, message)| {
                assert_eq!(url, DLQ);
                (message.message_attributes[sqs_kit::retry::attributes::SOURCE_MESSAGE_ID].string_value.clone().unwrap(), message.clone())
            }).collect();
            prop_assert_eq!(sent.len(), queue.sent.lock().unwrap().len(), "each copy sent once");
            let backed_off: BTreeMap<String, Duration> =
                queue.visibility.lock().unwrap().iter().map(|(_, change)| (change.message_id.clone(), change.timeout)).collect();
            for ((with, without), case) in report.records.iter().zip(&without.records).zip(&cases) {
                let id = &with.message_id;
                let accepted = !down && !case.refused;
                match (&without.outcome, &with.outcome) {
                    (Outcome::Failed(error), Outcome::DeadLettered { queue_url, .. }) => {
                        prop_assert!(error.is_permanent() && accepted && queue_url == DLQ, "{id}: {:?}", with.outcome);
                        prop_assert_eq!(&sent[id].body, &job(case.action));
                        prop_assert_eq!(sent[id].message_group_id.is_some(), false, "the DLQ URL is not FIFO");
                    }
                    (expected, actual) => {
                        prop_assert_eq!(expected.is_failure(), actual.is_failure(), "{}: {:?} vs {:?}", id, expected, actual);
                        prop_assert!(!sent.contains_key(id), "{id} was sent but not reported dead-lettered");
                        if let Outcome::Failed(error) = actual {
                            prop_assert!(!error.is_permanent() || !accepted, "{id}: accepted by the DLQ but reported failed");
                        }
                    }
                }
                let transient = matches!(&with.outcome, Outcome::Failed(error) if !error.is_permanent());
                match backed_off.get(id) {
                    Some(timeout) => {
                        prop_assert!(transient && accepted, "{id} backed off: {:?}", with.outcome);
                        prop_assert_eq!(*timeout, backoff().delay(case.receives));
                    }
                    None => prop_assert!(!transient || !accepted, "{id} failed transiently without a backoff"),
                }
            }
        }
    }

    #[tokio::test]
    async fn records_held_back_keep_the_queues_timeout() {
        let queue = Arc::new(FakeQueue::default());
        let config = BatchConfig::default().with_backoff(backoff());
        let calls = Calls::default();
        let records = vec![fifo_record("a1", "a", &job("fail")), fifo_record("a2", "a", &job("ok")), fifo_record("b1", "b", &job("ok"))];
        let report =
            processor(&calls, config).with_queue(queue.clone()).process(event(records), invocation(Duration::from_secs(30))).await.unwrap();
        assert!(matches!(report.records[1].outcome, Outcome::NotAttempted(Skip::GroupHeldBack { .. })), "{report:?}");
        let changed: Vec<String> = queue.visibility.lock().unwrap().iter().map(|(_, c)| c.message_id.clone()).collect();
        assert_eq!(changed, ["a1"], "only the failed record is backed off, not the one it holds back");
        assert_eq!(queue.visibility.lock().unwrap()[0].0, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-inventory.fifo");
    }

    #[tokio::test]
    async fn the_redrive_policy_is_read_once_per_source_queue() {
        let queue = Arc::new(FakeQueue::default());
        let processor = processor(&Calls::default(), BatchConfig::default().with_dead_letter(DeadLetterTarget::RedrivePolicy))
            .with_queue(queue.clone());
        for batch in 0..3 {
            let records = vec![record(&format!("p{batch}"), &job("poison")), record(&format!("o{batch}"), &job("ok"))];
            let response = processor.handle_event(event(records), invocation(Duration::from_secs(30))).await.unwrap();
            assert!(response.batch_item_failures.is_empty(), "the poison was dead-lettered: {response:?}");
        }
        assert_eq!(*queue.redrive_lookups.lock().unwrap(), 1);
        assert_eq!(queue.sent.lock().unwrap().len(), 3);
        assert!(queue.sent.lock().unwrap().iter().all(|(url, _)| url == DLQ));
    }

    #[tokio::test]
    async fn a_batch_whose_only_record_was_dead_lettered_did_not_all_fail() {
        let queue = Arc::new(FakeQueue::default());
        let config = BatchConfig::default().with_dead_letter(DeadLetterTarget::Queue(DLQ.into()));
        let processor = processor(&Calls::default(), config).with_queue(queue);
        let report = processor.process(event(vec![record("p", &job("poison"))]), invocation(Duration::from_secs(30))).await.unwrap();
        assert_eq!(report.totals().dead_lettered, 1);
        assert_eq!(report.totals().failed_permanent, 0);
        assert!(processor.respond(&report).is_ok(), "not an all-failed batch: its record is deleted");
        assert!(report.records[0].outcome.to_string().starts_with(&format!("dead-lettered to {DLQ}: the order has no items")));
    }

    #[tokio::test]
    async fn configured_without_a_queue_the_failures_are_reported_as_without_retry_control() {
        let config = BatchConfig::default().with_backoff(backoff()).with_dead_letter(DeadLetterTarget::RedrivePolicy);
        let processor = processor(&Calls::default(), config);
        let records = vec![record("p", &job("poison")), record("f", &job("fail")), record("o", &job("ok"))];
        let response = processor.handle_event(event(records), invocation(Duration::from_secs(30))).await.unwrap();
        assert_eq!(failure_ids(&response), ["p", "f"]);
    }
}
