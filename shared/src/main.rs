//! `sqs-kit`: operator tooling for the functions built on the toolkit.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sqs_kit::tool::main().await
}
