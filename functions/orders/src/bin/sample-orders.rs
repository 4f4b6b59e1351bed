//! `sample-orders --count N [--first-order M]`: N valid `OrderPlaced` events as a JSON list on
//! stdout, to publish into the pipeline, e.g.
//! `sample-orders --count 20 | sqs-kit publish --topic-arn ARN --file - --group-by /customerId --dedup-by /eventId`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use orders::sample::MAX_COUNT;

#[derive(Debug, Parser)]
#[command(name = "sample-orders", about = "Print valid OrderPlaced events (fresh event ids, a few customers) as a JSON list")]
struct Args {
    /// How many orders, 1 to 100000.
    #[arg(long, value_name = "N", value_parser = whole_number(1, MAX_COUNT))]
    count: u64,
    /// The order number of the first order (ORD-<N>, ORD-<N+1>, ...), 0 to 4294967295.
    #[arg(long, value_name = "N", default_value_t = 1001, value_parser = whole_number(0, u32::MAX.into()))]
    first_order: u64,
}

/// A whole number from `min` to `max`; anything else (negative, too large for any type, not a
/// number) is a usage error that names the range.
fn whole_number(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |text| text.parse().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| format!("expected a whole number from {min} to {max}"))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            // clap's first paragraph says what is wrong (a flag and its range, or the flags
            // missing), the rest is usage; one line of it, for scripts that read stderr.
            let rendered = error.render().to_string();
            let what: Vec<&str> = rendered.lines().map(str::trim).take_while(|line| !line.is_empty()).collect();
            eprintln!("{} (see --help)", what.join(" "));
            return ExitCode::from(2);
        }
    };
    let orders = orders::sample::orders(args.count as usize, args.first_order);
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut stdout, &orders).map_err(std::io::Error::from).and_then(|()| writeln!(stdout));
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: cannot write to standard output: {error}");
            ExitCode::from(1)
        }
    }
}
