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
use crate::idempotency::Transaction;
use crate::record::{InvocationContext, RecordMeta};

/// What a handler gets besides the body: the record's metadata and the invocation's context.
#[derive(Clone, Debug)]
pub struct RecordContext {
    pub meta: Arc<RecordMeta>,
    pub invocation: Arc<InvocationContext>,
    pub(crate) transaction: Option<Arc<Transaction>>,
}

impl RecordContext {
    pub fn new(meta: Arc<RecordMeta>, invocation: Arc<InvocationContext>) -> Self {
        Self { meta, invocation, transaction: None }
    }

    /// The transaction to commit business writes with, when the handler runs under
    /// transactional idempotency.
    pub fn transaction(&self) -> Result<&Transaction, RecordError> {
        self.transaction.as_deref().ok_or_else(|| {
            RecordError::permanent("this handler needs transactional idempotency; configure IdempotencyConfig::transactional()")
        })
    }
}

/// Business logic for one record, written against the function's own body type.
///
/// The body has already been parsed (and unwrapped from an SNS envelope); a body that does not
/// deserialize into [`RecordHandler::Body`] fails permanently before the handler is called.
pub trait RecordHandler: Send + Sync + 'static {
    type Body: DeserializeOwned + Send + 'static;
    /// What the handler reports on success; the idempotency layer stores it and hands it back
    /// for duplicates.
    type Output: Serialize + Send + 'static;

    fn handle(&self, body: Self::Body, cx: RecordContext) -> impl Future<Output = Result<Self::Output, RecordError>> + Send;
}

/// A [`RecordHandler`] made from an async closure.
pub struct FnHandler<F, B> {
    f: F,
    _body: PhantomData<fn(B)>,
}

/// Makes a handler from `async fn(Body, RecordContext) -> Result<Output, RecordError>`.
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
    pub body: Value,
    pub cx: RecordContext,
}

/// How a record that did not fail was handled.
#[derive(Clone, Debug, PartialEq)]
pub enum Handled {
    /// The handler ran; its serialized output.
    Processed(Value),
    /// An earlier delivery of the same work completed; the handler was skipped and this is the
    /// output that delivery stored.
    Duplicate(Value),
}

pub type RecordFuture = Pin<Box<dyn Future<Output = Result<Handled, RecordError>> + Send>>;

/// A type-erased record handler, the unit that layers wrap and the batch processor drives.
pub trait RecordService: Send + Sync + 'static {
    fn call(&self, record: Record) -> RecordFuture;
}

/// Adapts a typed handler to a [`RecordService`].
pub fn typed<H: RecordHandler>(handler: H) -> Typed<H> {
    Typed { handler: Arc::new(handler) }
}

pub struct Typed<H> {
    handler: Arc<H>,
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
