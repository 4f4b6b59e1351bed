//! The DynamoDB store: one table, partition key `id` (string), TTL on `expiration`.
//!
//! The claim is a single conditional `PutItem` with `ReturnValuesOnConditionCheckFailure =
//! ALL_OLD`: when the key is taken, DynamoDB returns the existing record with the failure, so
//! a duplicate costs one request and no read. The completion is a `PutItem` and the release a
//! `DeleteItem`, each conditioned on the item still carrying the caller's `claim_token`: one
//! request each, as before, and a claimant whose claim was taken over writes nothing.
//! Credentials, region and endpoint come from the standard AWS configuration chain;
//! `AWS_ENDPOINT_URL` points it at a local API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::attributes::{n, number, sdk_error, text};
use super::{wrong_write_kind, BusinessWrite, Claim, ClaimWriteFailure, CommitFailure, IdempotencyStore, StoreError};
use super::{IdempotencyRecord, Now, Status};

const CLAIM_CONDITION: &str =
    "attribute_not_exists(#id) OR #expiration < :now OR (#status = :in_progress AND #in_progress_expiration < :now_ms)";

/// The record still carries the caller's claim token (`:token`).
const OWNER_CONDITION: &str = "#claim_token = :token";
/// The caller's claim has no token: the record must have none either (records written before
/// tokens existed).
const TOKENLESS_OWNER_CONDITION: &str = "attribute_exists(#id) AND attribute_not_exists(#claim_token)";

/// Counts the HTTP requests a client sends (retries included), to measure the store's cost.
#[derive(Clone, Debug, Default)]
struct RequestCounter(Arc<AtomicUsize>);

impl RequestCounter {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The idempotency store on a DynamoDB table whose partition key is `id` (a string), with TTL
/// on `expiration`. A claim, a completion and a release cost one request each, and a duplicate
/// is found with its claim, without a read. Clones share the client.
#[derive(Clone, Debug)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    requests: RequestCounter,
}

impl DynamoDbStore {
    /// A store on `table` with a client from the standard AWS configuration chain (credentials,
    /// region, and `AWS_ENDPOINT_URL` for a local API). The table is not checked until the
    /// first request.
    pub async fn from_env(table: impl Into<String>) -> Self {
        let config = aws_config::load_from_env().await;
        Self::with_config(&config, table)
    }

    /// A store on `table` with a client built from `config`: for a caller that already has
    /// one, with its own credentials provider, retry settings or endpoint.
    pub fn with_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        let requests = RequestCounter::default();
        let client_config = aws_sdk_dynamodb::config::Builder::from(config).interceptor(requests.clone()).build();
        Self { client: Client::from_conf(client_config), table: table.into(), requests }
    }

    /// The client, for a function's own tables on the same connection pool.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The idempotency table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// HTTP requests this store's client has sent so far, retries included, across its clones
    /// and whoever else uses [`Self::client`].
    pub fn requests_sent(&self) -> usize {
        self.requests.get()
    }

    fn error<E, R>(&self, operation: &'static str, error: SdkError<E, R>) -> StoreError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        StoreError { store: self.describe(), operation, cause: sdk_error(&error) }
    }

    /// The `Put` of a transaction that writes `record` under the claim condition.
    fn conditional_put(&self, record: &IdempotencyRecord, now: Now) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression(CLAIM_CONDITION)
            .set_expression_attribute_names(Some(claim_names()))
            .set_expression_attribute_values(Some(claim_values(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError { store: self.describe(), operation: "commit", cause: e.to_string() })
    }
}

fn claim_names() -> HashMap<String, String> {
    [("#id", "id"), ("#expiration", "expiration"), ("#status", "status"), ("#in_progress_expiration", "in_progress_expiration")]
        .into_iter()
        .map(|(placeholder, name)| (placeholder.to_owned(), name.to_owned()))
        .collect()
}

fn claim_values(now: Now) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":now".to_owned(), n(now.secs)),
        (":now_ms".to_owned(), n(now.millis)),
        (":in_progress".to_owned(), AttributeValue::S(Status::InProgress.as_str().to_owned())),
    ])
}

fn to_item(record: &IdempotencyRecord) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("id".to_owned(), AttributeValue::S(record.id.clone())),
        ("status".to_owned(), AttributeValue::S(record.status.as_str().to_owned())),
        ("expiration".to_owned(), n(record.expiration)),
        ("payload_hash".to_owned(), AttributeValue::S(record.payload_hash.clone())),
        ("updated_at".to_owned(), n(record.updated_at)),
    ]);
    if let Some(until) = record.in_progress_expiration {
        item.insert("in_progress_expiration".to_owned(), n(until));
    }
    if let Some(result) = &record.result {
        item.insert("result".to_owned(), AttributeValue::S(result.to_string()));
    }
    if let Some(token) = &record.claim_token {
        item.insert("claim_token".to_owned(), AttributeValue::S(token.clone()));
    }
    item
}

/// Reads a record back; `None` when the item does not have the record's shape.
fn from_item(item: &HashMap<String, AttributeValue>) -> Option<IdempotencyRecord> {
    let string = |name: &str| text(item, name).map(str::to_owned);
    let int = |name: &str| number(item, name);
    Some(IdempotencyRecord {
        id: string("id")?,
        status: Status::parse(&string("status")?)?,
        expiration: int("expiration")?,
        in_progress_expiration: int("in_progress_expiration"),
        payload_hash: string("payload_hash").unwrap_or_default(),
        result: string("result").and_then(|text| serde_json::from_str(&text).ok()),
        updated_at: int("updated_at").unwrap_or_default(),
        claim_token: string("claim_token"),
    })
}

/// The condition, names and values under which a write acts for `claim`'s owner only.
fn owner_condition(claim: &IdempotencyRecord) -> (&'static str, HashMap<String, String>, Option<HashMap<String, AttributeValue>>) {
    let names = HashMap::from([("#claim_token".to_owned(), "claim_token".to_owned())]);
    match &claim.claim_token {
        Some(token) => (OWNER_CONDITION, names, Some(HashMap::from([(":token".to_owned(), AttributeValue::S(token.clone()))]))),
        None => {
            let mut names = names;
            names.insert("#id".to_owned(), "id".to_owned());
            (TOKENLESS_OWNER_CONDITION, names, None)
        }
    }
}

fn key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("id".to_owned(), AttributeValue::S(id.to_owned()))])
}

#[async_trait]
impl IdempotencyStore for DynamoDbStore {
    fn describe(&self) -> String {
        format!("DynamoDB table {}", self.table)
    }

    async fn claim(&self, record: &IdempotencyRecord, now: Now) -> Result<Claim, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression(CLAIM_CONDITION)
            .set_expression_attribute_names(Some(claim_names()))
            .set_expression_attribute_values(Some(claim_values(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Claim::Acquired),
            Err(error) => error,
        };
        match error.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                let existing = failed.item().and_then(from_item).ok_or_else(|| StoreError {
                    store: self.describe(),
                    operation: "claim",
                    cause:
                        "the condition failed but DynamoDB returned no readable record (is ReturnValuesOnConditionCheckFailure supported?)"
                            .into(),
                })?;
                Ok(Claim::Existing(existing))
            }
            _ => Err(self.error("claim", error)),
        }
    }

    async fn complete(&self, claim: &IdempotencyRecord, record: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        let (condition, names, values) = owner_condition(claim);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if matches!(error.as_service_error(), Some(PutItemError::ConditionalCheckFailedException(_))) => {
                Err(ClaimWriteFailure::ClaimLost)
            }
            Err(error) => Err(self.error("complete", error).into()),
        }
    }

    async fn release(&self, claim: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        let (owner, mut names, values) = owner_condition(claim);
        names.insert("#status".to_owned(), "status".to_owned());
        let mut values = values.unwrap_or_default();
        values.insert(":in_progress".to_owned(), AttributeValue::S(Status::InProgress.as_str().to_owned()));
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(&claim.id)))
            .condition_expression(format!("#status = :in_progress AND {owner}"))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if matches!(error.as_service_error(), Some(DeleteItemError::ConditionalCheckFailedException(_))) => {
                Err(ClaimWriteFailure::ClaimLost)
            }
            Err(error) => Err(self.error("release", error).into()),
        }
    }

    async fn commit(&self, record: &IdempotencyRecord, writes: Vec<BusinessWrite>, now: Now, _deadline: Now) -> Result<(), CommitFailure> {
        let mut items = vec![TransactWriteItem::builder().put(self.conditional_put(record, now)?).build()];
        for write in writes {
            match write {
                BusinessWrite::DynamoDb(item) => items.push(*item),
                other => return Err(wrong_write_kind(&self.describe(), &other)),
            }
        }
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        let error = match result {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error() else {
            return Err(self.error("commit", error).into());
        };
        let reasons = cancelled.cancellation_reasons();
        let failed_condition = |reason: &aws_sdk_dynamodb::types::CancellationReason| reason.code() == Some("ConditionalCheckFailed");
        if let Some(claim_reason) = reasons.first().filter(|reason| failed_condition(reason)) {
            return Err(CommitFailure::ClaimLost(claim_reason.item().and_then(from_item).map(Box::new)));
        }
        if let Some((position, reason)) = reasons.iter().enumerate().skip(1).find(|(_, reason)| failed_condition(reason)) {
            return Err(CommitFailure::BusinessCondition {
                index: position - 1,
                reason: reason.message().unwrap_or("the condition of the write failed").to_owned(),
            });
        }
        let codes: Vec<&str> = reasons.iter().map(|reason| reason.code().unwrap_or("None")).collect();
        Err(StoreError {
            store: self.describe(),
            operation: "commit",
            cause: format!("the transaction was cancelled ({}); it will be retried", codes.join(", ")),
        }
        .into())
    }

    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("read", e))?;
        Ok(output.item().and_then(from_item))
    }

    async fn evict(&self, id: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| self.error("evict", e))?;
        Ok(output.attributes().is_some_and(|attributes| !attributes.is_empty()))
    }
}
