//! Record handlers: the typed trait a function implements, and the type-erased service the batch
//! processor drives.
//!
//! The split mirrors `tower`: a function author writes a [`RecordHandler`] over its own body
//! type; [`typed`] turns it into a [`RecordService`] over JSON, and layers such as idempotency
//! wrap that service without knowing the body type.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use crate::error::RecordError;
use crate::record::{InvocationContext, RecordMeta};

/// What a handler gets besides the body: the record's metadata, the invocation's context, and
/// what the layers around the handler put there for it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordContext {
    /// The record's SQS metadata.
    pub meta: Arc<RecordMeta>,
    /// The invocation the record belongs to (deadline, function name, request id).
    pub invocation: Arc<InvocationContext>,
    /// Values a layer hands to the services inside it, by type, as `http::Request` carries
    /// them: the idempotency layer puts the record's
    /// [`Transaction`](crate::idempotency::Transaction) here in transactional mode. Layers
    /// of one's own can use it the same way, without this module knowing them.
    pub extensions: http::Extensions,
}

impl RecordContext {
    /// The context of a record with no extensions yet.
    pub fn new(meta: Arc<RecordMeta>, invocation: Arc<InvocationContext>) -> Self {
        Self { meta, invocation, extensions: http::Extensions::new() }
    }
}

/// Business logic for one record, written against the function's own body type.
///
/// The body has already been parsed (and unwrapped from an SNS envelope); a body that does not
/// deserialize into [`RecordHandler::Body`] fails permanently before the handler is called.
/// [`typed`] makes a [`RecordService`] of it; [`handler_fn`] makes one of an async closure.
///
/// ```
/// use sqs_kit::{RecordContext, RecordError, RecordHandler};
///
/// #[derive(serde::Deserialize)]
/// struct Payment {
///     cents: u64,
/// }
///
/// struct Ledger;
///
/// impl RecordHandler for Ledger {
///     type Body = Payment;
///     type Output = u64;
///
///     async fn handle(&self, payment: Payment, _cx: RecordContext) -> Result<u64, RecordError> {
///         if payment.cents == 0 {
///             return Err(RecordError::permanent("a payment of nothing"));
///         }
///         Ok(payment.cents)
///     }
/// }
/// # let _ = sqs_kit::typed(Ledger);
/// ```
pub trait RecordHandler: Send + Sync + 'static {
    /// The body type: the record's JSON body (or its SNS envelope's `Message`) deserialized.
    type Body: DeserializeOwned + Send + 'static;
    /// What the handler reports on success; the idempotency layer stores it and hands it back
    /// for duplicates.
    type Output: Serialize + Send + 'static;

    /// Handles one record. The future runs on its own tokio task: a panic fails this record
    /// alone (transient), and a handler still running shortly before the invocation's deadline
    /// is abandoned and its record failed (transient). An `Err` reports the record failed, so
    /// SQS delivers it again; under idempotency, nothing is recorded for the key, so that the
    /// retry runs the handler again.
    fn handle(&self, body: Self::Body, cx: RecordContext) -> impl Future<Output = Result<Self::Output, RecordError>> + Send;
}

/// A [`RecordHandler`] made from an async closure by [`handler_fn`].
pub struct FnHandler<F, B> {
    f: F,
    _body: PhantomData<fn(B)>,
}

impl<F, B> std::fmt::Debug for FnHandler<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnHandler").field("body", &short_type_name::<B>()).finish_non_exhaustive()
    }
}

/// Makes a handler from `async fn(Body, RecordContext) -> Result<Output, RecordError>`, or a
/// closure returning such a future. `Body` is what the record's JSON body deserializes into,
/// `Output` what the handler reports (serialized to JSON, and stored for duplicates under
/// idempotency).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use serde_json::json;
/// use sqs_kit::handler::{Handled, Record};
/// use sqs_kit::{handler_fn, typed, InvocationContext, RecordContext, RecordError, RecordMeta, RecordService};
///
/// #[derive(serde::Deserialize)]
/// struct Greeting {
///     name: String,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = typed(handler_fn(|greeting: Greeting, _cx: RecordContext| async move {
///     Ok::<_, RecordError>(format!("hello, {}", greeting.name))
/// }));
///
/// let invocation = Arc::new(InvocationContext::with_remaining("greeter", "request-1", Duration::from_secs(30)));
/// let cx = RecordContext::new(Arc::new(RecordMeta::new("m1")), invocation);
/// let handled = service.call(Record { body: json!({"name": "Ada"}), cx: cx.clone() }).await.unwrap();
/// assert_eq!(handled, Handled::Processed(json!("hello, Ada")));
///
/// // A body that is not a `Greeting` fails permanently, before the closure runs.
/// let error = service.call(Record { body: json!({"nom": "Ada"}), cx }).await.unwrap_err();
/// assert!(error.is_permanent());
/// # }
/// ```
pub fn handler_fn<F, B>(f: F) -> FnHandler<F, B> {
    FnHandler { f, _body: PhantomData }
}

impl<F, B, Fut, O> RecordHandler for FnHandler<F, B>
where
    F: Fn(B, RecordContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, RecordError>> + Send,
    B: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    type Body = B;
    type Output = O;

    fn handle(&self, body: B, cx: RecordContext) -> impl Future<Output = Result<O, RecordError>> + Send {
        (self.f)(body, cx)
    }
}

/// One record as the services see it: the parsed body and its context.
#[derive(Clone, Debug)]
pub struct Record {
    /// The body as JSON, unwrapped from an SNS envelope ([`crate::record::decode_body`]).
    pub body: Value,
    /// The record's metadata, its invocation, and what the layers around the service put in
    /// its extensions.
    pub cx: RecordContext,
}

/// How a record that did not fail was handled. Either way the record counts as a success:
/// it is left out of `batchItemFailures`, and SQS deletes it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Handled {
    /// The handler ran; its serialized output.
    Processed(Value),
    /// An earlier delivery of the same work completed; the handler was skipped and this is the
    /// output that delivery stored.
    Duplicate(Value),
}

/// What [`RecordService::call`] returns: a boxed future, so that services of different types
/// (and layers around them) can be stored as `Arc<dyn RecordService>`.
pub type RecordFuture = Pin<Box<dyn Future<Output = Result<Handled, RecordError>> + Send>>;

/// A type-erased record handler, the unit that layers wrap and the batch processor drives.
///
/// A layer of one's own implements it around an inner service, as
/// [`Idempotent`](crate::idempotency::Idempotent) does; [`from_tower`] makes one of a tower
/// service.
pub trait RecordService: Send + Sync + 'static {
    /// Handles one record. The batch processor calls it concurrently for the records of a
    /// batch (in order within a FIFO message group), each call on its own tokio task.
    fn call(&self, record: Record) -> RecordFuture;
}

/// Adapts a typed handler to a [`RecordService`]: the record's JSON body is deserialized into
/// [`RecordHandler::Body`] (a body that does not fit fails permanently, naming the type, and
/// the handler is not called), and the handler's output is serialized into
/// [`Handled::Processed`]. See [`handler_fn`] for an example.
pub fn typed<H: RecordHandler>(handler: H) -> Typed<H> {
    Typed { handler: Arc::new(handler) }
}

/// The [`RecordService`] of a typed [`RecordHandler`], made by [`typed`].
pub struct Typed<H> {
    handler: Arc<H>,
}

impl<H> std::fmt::Debug for Typed<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Typed").field(&short_type_name::<H>()).finish()
    }
}

impl<H: RecordHandler> RecordService for Typed<H> {
    fn call(&self, record: Record) -> RecordFuture {
        let handler = Arc::clone(&self.handler);
        Box::pin(async move {
            let body = H::Body::deserialize(&record.body)
                .map_err(|e| RecordError::permanent(format!("the body is not a valid {}: {e}", short_type_name::<H::Body>())))?;
            let output = handler.handle(body, record.cx).await?;
            let output = serde_json::to_value(output)
                .map_err(|e| RecordError::permanent(format!("the handler's output could not be serialized: {e}")))?;
            Ok(Handled::Processed(output))
        })
    }
}

/// `OrderEvent` for `orders::OrderEvent`: the name an operator recognises in a log line.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let path = full.split('<').next().unwrap_or(full);
    path.rsplit("::").next().unwrap_or(path)
}

impl<S: RecordService + ?Sized> RecordService for Arc<S> {
    fn call(&self, record: Record) -> RecordFuture {
        (**self).call(record)
    }
}

/// A [`RecordService`] as a [`tower::Service`] of records (see [`into_tower`]), so that tower
/// middleware (a timeout, a rate limit, tracing) can wrap it; [`from_tower`] brings the result
/// back to the batch processor.
#[derive(Debug)]
pub struct TowerRecordService<S>(Arc<S>);

impl<S> Clone for TowerRecordService<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

/// `service` as a [`tower::Service<Record>`].
pub fn into_tower<S: RecordService>(service: S) -> TowerRecordService<S> {
    TowerRecordService(Arc::new(service))
}

impl<S: RecordService> tower::Service<Record> for TowerRecordService<S> {
    type Response = Handled;
    type Error = RecordError;
    type Future = RecordFuture;

    /// Always ready: a record service takes records concurrently.
    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), RecordError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, record: Record) -> RecordFuture {
        self.0.call(record)
    }
}

/// A [`tower::Service`] of records as a [`RecordService`] (see [`from_tower`]).
#[derive(Clone, Debug)]
pub struct FromTower<T>(T);

/// Makes a [`RecordService`] of a tower service of records. Each record gets a clone of the
/// service, waits until it is ready (a tower rate limit or concurrency limit holds it there)
/// and is then called.
pub fn from_tower<T>(service: T) -> FromTower<T>
where
    T: tower::Service<Record, Response = Handled, Error = RecordError> + Clone + Send + Sync + 'static,
    T::Future: Send + 'static,
{
    FromTower(service)
}

impl<T> RecordService for FromTower<T>
where
    T: tower::Service<Record, Response = Handled, Error = RecordError> + Clone + Send + Sync + 'static,
    T::Future: Send + 'static,
{
    fn call(&self, record: Record) -> RecordFuture {
        let mut service = self.0.clone();
        Box::pin(async move {
            futures::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            service.call(record).await
        })
    }
}
