//! The AWS adapter: SES v2 `SendEmail` with simple content (subject, text and HTML body).
//!
//! The client is built on first use, from the standard AWS configuration chain
//! (`aws_config::load_from_env`, as the DynamoDB store does). The runner builds adapters in a
//! synchronous closure, and loading the configuration is async: blocking on it there would tie
//! the binary to the multi-threaded runtime, and copying region and credentials from the
//! DynamoDB client would drop what the chain resolves for SES alone (an `AWS_ENDPOINT_URL_SESV2`
//! override, a profile's service settings). A [`OnceCell`] makes the first record of an
//! execution environment load it once; concurrent records wait for that one load.
//!
//! SES has no idempotency token: if the function dies after SES accepted a mail and before the
//! idempotency record is completed, the retry sends the mail again. Claim mode narrows that
//! window to one request; it cannot close it.

use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageHeader};
use aws_sdk_sesv2::Client;
use async_trait::async_trait;
use sqs_kit::RecordError;
use tokio::sync::OnceCell;

use crate::domain::{Delivery, Mail, Mailer};
use crate::mime;

/// SES's limit on a custom header value.
const MAX_HEADER_VALUE: usize = 870;

#[derive(Default)]
pub struct SesMailer {
    client: OnceCell<Client>,
}

impl SesMailer {
    pub fn new() -> Self {
        Self::default()
    }

    async fn client(&self) -> &Client {
        self.client.get_or_init(|| async { Client::new(&aws_config::load_from_env().await) }).await
    }
}

fn utf8(text: &str) -> Result<Content, RecordError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| RecordError::permanent(format!("the mail content could not be built: {e}")))
}

/// The listing headers of the outbox files, so that a mail in an inbox names its event too.
/// A value SES would refuse (over its length limit) is left out rather than failing the mail.
fn headers(mail: &Mail) -> Vec<MessageHeader> {
    [(mime::KIND_HEADER, mail.kind.as_str().to_owned()), (mime::ORDER_HEADER, mail.order_id.clone()), (mime::EVENT_HEADER, mail.event_id.clone())]
        .into_iter()
        .filter_map(|(name, value)| {
            let value = mime::encode_header(&value, " ");
            (value.len() <= MAX_HEADER_VALUE).then(|| MessageHeader::builder().name(name).value(value).build().ok()).flatten()
        })
        .collect()
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<Delivery, RecordError> {
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(Body::builder().text(utf8(&mail.text)?).html(utf8(&mail.html)?).build())
            .set_headers(Some(headers(mail)))
            .build();
        let output = self
            .client()
            .await
            .send_email()
            .from_email_address(&mail.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|error| failure(mail, error))?;
        let message_id = output.message_id().unwrap_or_default().to_owned();
        Ok(Delivery::Ses { message_id })
    }
}

/// What a `SendEmail` failure means for the record. Only a message SES refuses as such is
/// permanent; throttling, a paused or suspended account, a sending domain being verified and
/// network trouble can pass, and SQS will deliver the record again.
fn failure<R: std::fmt::Debug>(mail: &Mail, error: SdkError<SendEmailError, R>) -> RecordError {
    // The service's own code and message: the full error context would dump the raw HTTP
    // response. SES quotes the addresses it objects to; they must not reach the logs.
    let detail = match &error {
        SdkError::ServiceError(service) => {
            let error = service.err();
            format!("{}: {}", error.code().unwrap_or("unknown error"), error.message().unwrap_or("no message"))
        }
        other => DisplayErrorContext(other).to_string(),
    };
    let detail = sqs_kit::redact::email_addresses(&detail);
    let what = format!("the {} mail for order {} (event {})", mail.kind.as_str(), mail.order_id, mail.event_id);
    match error.as_service_error() {
        Some(SendEmailError::MessageRejected(_) | SendEmailError::BadRequestException(_)) => RecordError::permanent(format!(
            "SES refused {what}: {detail}; check that EMAIL_SENDER is a verified identity (and, in the SES sandbox, the recipient too)"
        )),
        _ => RecordError::transient(format!("SES could not send {what}: {detail}; it will be retried")),
    }
}
