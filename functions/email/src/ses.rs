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
//! `SendEmail` has no idempotency token (no client token, and no way to look a sent mail up
//! by our event id), so a mail SES accepted but the idempotency record does not show as sent
//! is sent again by the next delivery. That happens only when the process dies (or the
//! completion write fails) between SES's answer and the completion, or when SES's answer is
//! lost after it took the mail. This adapter keeps the window to that:
//! - the SDK does not retry a `SendEmail` that SES may have accepted (a timeout, a dropped
//!   connection, a 5xx); it retries only a throttling refusal ([`RetryRefusalsOnly`]);
//! - a mail is not sent with less than [`SEND_RESERVE`] left before the deadline, when the
//!   claim lapses and the batch abandons the record, so an accepted mail can still be recorded;
//! - the handler returns straight after SES answers, and the SES message id goes into the log
//!   line and the idempotency result, so a second mail can be matched to the first.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::config::interceptors::InterceptorContext;
use aws_sdk_sesv2::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageHeader};
use aws_sdk_sesv2::Client;
use sqs_kit::RecordError;
use tokio::sync::OnceCell;

use crate::domain::{Delivery, Mail, Mailer};
use crate::mime;

/// SES's limit on a custom header value.
const MAX_HEADER_VALUE: usize = 870;

/// The least time before the invocation's deadline a send may start with: SES answers in well
/// under a second, and the completion write needs the rest.
const SEND_RESERVE: Duration = Duration::from_secs(1);

/// Lets the SDK retry a failed `SendEmail` only when SES refused it (HTTP 429, throttling):
/// after a timeout, a dropped connection or a server error, SES may have taken the mail, and
/// a retry would send it twice. Such a failure goes back to SQS, which delivers it again.
#[derive(Debug)]
struct RetryRefusalsOnly;

impl ClassifyRetry for RetryRefusalsOnly {
    fn classify_retry(&self, cx: &InterceptorContext) -> RetryAction {
        let refused = cx.response().is_some_and(|response| response.status().as_u16() == 429);
        match cx.output_or_error() {
            Some(Err(_)) if !refused => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "retry SendEmail only when SES refused it"
    }
}

#[derive(Default)]
pub struct SesMailer {
    client: OnceCell<Client>,
}

impl SesMailer {
    pub fn new() -> Self {
        Self::default()
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let shared = aws_config::load_from_env().await;
                Client::from_conf(aws_sdk_sesv2::config::Builder::from(&shared).retry_classifier(RetryRefusalsOnly).build())
            })
            .await
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
    [
        (mime::KIND_HEADER, mail.kind.as_str().to_owned()),
        (mime::ORDER_HEADER, mail.order_id.clone()),
        (mime::EVENT_HEADER, mail.event_id.clone()),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        let value = mime::encode_header(&value, " ");
        (value.len() <= MAX_HEADER_VALUE).then(|| MessageHeader::builder().name(name).value(value).build().ok()).flatten()
    })
    .collect()
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail, time_left: Duration) -> Result<Delivery, RecordError> {
        if time_left < SEND_RESERVE {
            return Err(RecordError::transient(format!(
                "not sending {} yet: {} ms are left before the invocation's deadline, less than the {} ms it takes to send a mail and record it as sent (an unrecorded mail is sent again); it will be retried",
                what(mail),
                time_left.as_millis(),
                SEND_RESERVE.as_millis()
            )));
        }
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
fn failure(mail: &Mail, error: SdkError<SendEmailError, HttpResponse>) -> RecordError {
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
    let what = what(mail);
    match error.as_service_error() {
        Some(SendEmailError::MessageRejected(_) | SendEmailError::BadRequestException(_)) => RecordError::permanent(format!(
            "SES refused {what}: {detail}; check that EMAIL_SENDER is a verified identity (and, in the SES sandbox, the recipient too)"
        )),
        _ => {
            // No answer, or a server error: SES may have taken the mail all the same. Said
            // here, so that the log explains a second mail.
            let unanswered = matches!(error, SdkError::TimeoutError(_) | SdkError::ResponseError(_))
                || error.raw_response().is_some_and(|response| response.status().is_server_error());
            let repeat = if unanswered { " (SES may have sent it nonetheless; the retry then sends it a second time)" } else { "" };
            RecordError::transient(format!("SES could not send {what}: {detail}; it will be retried{repeat}"))
        }
    }
}

fn what(mail: &Mail) -> String {
    format!("the {} mail for order {} (event {})", mail.kind.as_str(), mail.order_id, mail.event_id)
}
